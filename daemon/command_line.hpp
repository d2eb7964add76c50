#pragma once
// agentlockd's command line.

#include <agentlock/config.hpp>

#include <optional>
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
    /// Hidden, for tests: event sources to treat as unavailable ("pidfd", "inotify"), as if
    /// the kernel lacked them (--events-test-disable=pidfd,inotify).
    std::vector<std::string> events_test_disable;
};

/// Parses the arguments after argv[0]. Flags take their value as the next argument or after '='
/// (--interval=5s). Unknown flags, missing or bad values, conflicting modes and stray arguments
/// are errors; `error` then says which.
std::optional<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                              std::string& error);

/// The --help text.
std::string help_text();

/// The --version text: "agentlockd <version>".
std::string version_text();

} // namespace agentlock::daemon
