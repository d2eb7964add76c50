#pragma once
// The agent.lock format: the only place that knows the JSON shape.

#include <agentlock/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace agentlock {

using Timestamp = std::chrono::sys_time<std::chrono::nanoseconds>;

inline constexpr std::string_view k_runtime_dir = ".runtime";
inline constexpr std::string_view k_lock_name = "agent.lock";
inline constexpr std::string_view k_flock_name = "agent.lock.flock";
/// Lock files larger than this are judged invalid and never read whole.
inline constexpr std::size_t k_max_lock_bytes = 64 * 1024;

/// What a lock file says. Field names match the Go implementation's LockInfo.
struct LockInfo {
    std::int64_t pid = 0;
    Timestamp acquired_at{};
    std::string session_id; ///< empty when absent
    std::string hostname;   ///< empty when absent
    /// Extra fields only our writer records; Go readers ignore them.
    std::optional<std::uint64_t> pid_start_ticks; ///< /proc/<pid>/stat field 22 of the owner
    std::optional<std::string> boot_id;           ///< /proc/sys/kernel/random/boot_id at write
    /// The tmux server the agent ran in, from its $TMUX, so the judge asks that server.
    std::optional<std::string> tmux_socket;      ///< the server's socket path
    std::optional<std::int64_t> tmux_server_pid; ///< the server's PID

    bool operator==(const LockInfo&) const = default;
};

/// Parses lock JSON as Go's encoding/json would; unknown fields are ignored.
/// Errors are ErrorKind::invalid_lock with a message naming what is wrong.
Result<LockInfo> parse_lock(std::string_view json);

/// Serialises byte for byte like Go's json.MarshalIndent(info, "", "  ") of a UTC time (fraction
/// trimmed as in RFC3339Nano, Go's string escaping, no trailing newline), plus our extra fields.
std::string serialize_lock(const LockInfo& info);

/// Parses RFC 3339 with 0 to 9 fractional digits and `Z` or `±hh:mm`, as Go's time.Parse(RFC3339)
/// does (extra digits truncated); nullopt for garbage and for times a Timestamp cannot hold
/// (before 1677-09-21 or after 2262-04-11, e.g. Go's zero time 0001-01-01T00:00:00Z).
std::optional<Timestamp> parse_rfc3339(std::string_view text);

/// Formats as RFC 3339 in UTC with nine fractional digits, e.g. 2026-11-27T05:15:43.123456789Z.
std::string format_rfc3339(Timestamp t);

/// The outcome of reading a lock file through its directory fd.
struct LockRead {
    enum class State { ok, absent, invalid, io_error };
    State state = State::io_error;
    std::string bytes;            ///< what was read (capped at k_max_lock_bytes)
    std::optional<LockInfo> info; ///< set when state is ok
    std::string message;          ///< why it is invalid or unreadable, naming the path
};

/// Opens `agent.lock` under `runtime_fd` with O_NOFOLLOW|O_NONBLOCK, requires a regular file of at
/// most k_max_lock_bytes, reads and parses it. `lock_path` is used in messages only.
LockRead read_lock_at(int runtime_fd, const std::string& lock_path);

/// Atomically replaces `agent.lock` under `runtime_fd`: temporary file in the same directory,
/// fsync, rename, fsync of the directory. Mode 0644.
Status write_lock_at(int runtime_fd, const std::string& lock_path, const LockInfo& info);

/// The tmux server named by a $TMUX value ("socket_path,server_pid,session_index").
struct TmuxEnv {
    std::string socket_path;
    std::int64_t server_pid = 0;
};

/// Parses $TMUX; nullopt when it is empty or not of that shape. The path may hold commas: the
/// last two fields are the numbers.
std::optional<TmuxEnv> parse_tmux_env(std::string_view value);

/// `<worker>/.runtime/agent.lock` for a worker directory.
std::string lock_path_for(std::string_view worker_dir);

} // namespace agentlock
