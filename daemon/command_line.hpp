#pragma once
// agentlockd's command line.

#include <agentlock/config.hpp>

#include <agentlock/result.hpp>

#include <string>
#include <vector>

namespace agentlock::daemon {

enum class Mode {
    run,          ///< the long-running daemon
    once,         ///< one pass, report on stdout
    check_config, ///< validate the config and exit
    version,
    help,
};

/// Exit codes, as documented in --help.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_usage = 1;
inline constexpr int k_exit_start_failure = 2;

/// What the command line asked for.
struct CommandLine {
    Mode mode = Mode::run;
    bool json = false;       ///< --once --json
    std::string config_path; ///< --config FILE; empty when not given
    ConfigOverrides overrides;
};

/// Parses the arguments after argv[0]. Flags take their value as the next argument or after '='
/// (--interval=5s). Unknown flags, missing or bad values, conflicting modes and stray arguments
/// are `invalid` errors whose path is the flag (or argument) at fault and whose message says
/// what is wrong with it.
Result<CommandLine> parse_command_line(const std::vector<std::string>& args);

/// The --help text.
std::string help_text();

/// The --version text: "agentlockd <version>".
std::string version_text();

} // namespace agentlock::daemon
