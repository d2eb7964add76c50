#pragma once
// agentlockd's entry point, apart from main() so tests can reach the pieces.

#include <agentlock/result.hpp>

#include <string>
#include <vector>

namespace agentlock::daemon {

/// Runs agentlockd with the arguments after argv[0]; returns the process exit code.
int agentlockd_main(const std::vector<std::string>& args);

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force
/// ("unlimited" or a number), or an io error whose message starts with "getrlimit" / "setrlimit"
/// (and says the limit it stays at).
Result<std::string> raise_nofile_limit();

} // namespace agentlock::daemon
