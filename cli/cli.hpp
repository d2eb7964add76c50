#pragma once
// The agentlock command's shared parts: exit codes, argument parsing, the worker checks and the
// settings every subcommand reads (tmux server, config file).

#include <agentlock/config.hpp>
#include <agentlock/lock.hpp>
#include <agentlock/result.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock::cli {

// Exit codes (sysexits.h where one fits); docs/agentlock.1 lists them.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_usage = 1;
inline constexpr int k_exit_invalid_lock = 65; ///< EX_DATAERR: the lock file is not a lock
inline constexpr int k_exit_no_worker = 66;    ///< EX_NOINPUT: worker missing, a symlink, ...
inline constexpr int k_exit_software = 70;     ///< EX_SOFTWARE: cannot happen
inline constexpr int k_exit_io = 74;           ///< EX_IOERR: a system call failed
inline constexpr int k_exit_locked = 75;       ///< EX_TEMPFAIL: another live agent holds it
inline constexpr int k_exit_not_owner = 77;    ///< EX_NOPERM: release of another owner's lock
inline constexpr int k_exit_config = 78;       ///< EX_CONFIG: the config file is invalid
inline constexpr int k_exit_cannot_execute = 126;
inline constexpr int k_exit_not_found = 127;

/// The flags of one subcommand: name (with dashes) and whether it takes a value.
struct FlagSpec {
    std::string_view name;
    bool takes_value = false;
};

/// A parsed subcommand line. Flags come before the operands; "--" ends them, and for `run`
/// everything after WORKER (and an optional "--") is the command.
struct Args {
    std::map<std::string, std::vector<std::string>, std::less<>> flags; ///< values in order
    std::vector<std::string> operands;
    std::vector<std::string> command; ///< run's CMD [ARG...]
    bool help = false;

    bool has(std::string_view flag) const { return flags.find(flag) != flags.end(); }
    /// The last value given for `flag`, if any.
    std::optional<std::string> value(std::string_view flag) const;
};

/// Parses `args` against `specs`. With `command_after` set, the operand at that index ends the
/// flags and what follows it (after an optional "--") is `command`. Errors are `invalid`.
Result<Args> parse_args(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs,
                        std::optional<std::size_t> command_after = std::nullopt);

/// `text` as printed: bytes that are not UTF-8 as \xNN.
std::string shown(std::string_view text);

/// Prints "agentlock: MESSAGE" to stderr (escaped) and returns `code`.
int fail(int code, std::string_view message);

/// The exit code for an Error from the library.
int exit_code_of(const Error& error);

/// Requires WORKER to be an existing directory reached without a symlink as its last component
/// (a lock must be taken where the daemon looks, and the walk does not follow symlinks). The
/// Error (`invalid`, path: the worker) says what is wrong and where.
Status check_worker_dir(const std::string& worker);

/// The config file to read: --config, else the user's ($XDG_CONFIG_HOME or ~/.config)
/// agentlockd/agentlockd.json if present, else /etc/agentlockd/agentlockd.json if present, else
/// none ("").
std::string config_path_of(const Args& args);

/// The tmux server of `worker`: --tmux-socket or --tmux-socket-path, else the config file's for
/// the root that holds the worker (its own server, a gastown town's socket) or for every root,
/// else tmux's default (which is the server of $TMUX inside tmux). An unreadable config, or a
/// gastown town whose socket cannot be named, is an Error.
Result<TmuxServer> tmux_server_of_args(const Args& args, const std::string& worker);

/// "-L NAME", "-S PATH" or "default".
std::string describe(const TmuxServer& server);

/// "PID n, session S, host H, since T (AGE ago)" for messages about a holder.
std::string describe_holder(const LockInfo& info);

/// Whole seconds, minutes, hours or days: "42s", "5m", "3h", "2d".
std::string format_age(Timestamp since);

/// The flags every subcommand that judges a lock takes.
inline const std::vector<FlagSpec> k_server_flags = {
    {"--config", true}, {"--tmux-socket", true}, {"--tmux-socket-path", true}};

/// `agentlock run`: takes the lock for CMD's pid, runs CMD, releases when it ends.
int run_main(const Args& args);

} // namespace agentlock::cli
