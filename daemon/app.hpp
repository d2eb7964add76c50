#pragma once
// agentlockd's entry point, apart from main() so tests can reach the pieces.

#include <string>
#include <vector>

namespace agentlock::daemon {

/// Runs agentlockd with the arguments after argv[0]; returns the process exit code.
int agentlockd_main(const std::vector<std::string>& args);

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force, or an
/// error message starting with "setrlimit" / "getrlimit".
std::string raise_nofile_limit(bool& ok);

} // namespace agentlock::daemon
