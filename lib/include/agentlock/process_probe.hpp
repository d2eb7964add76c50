#pragma once
// The process probe: answers questions about a PID, never decides.

#include <agentlock/lock_file.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace agentlock {

enum class ProcessState : std::uint8_t {
    alive,   ///< kill(pid, 0) succeeded or failed with EPERM, and it is not a zombie
    dead,    ///< ESRCH, or pid <= 0
    zombie,  ///< exited, not yet reaped: its owner is gone
    unknown, ///< the probe itself failed (kill with another errno)
};

/// What the probe saw of one PID.
struct ProcessFacts {
    ProcessState state = ProcessState::unknown;
    /// Set when state is alive and /proc/<pid>/stat could be read.
    std::optional<std::uint64_t> start_ticks; ///< field 22, clock ticks since boot
    std::optional<Timestamp> start_time;      ///< start_ticks converted to wall-clock time
    std::string detail; ///< why start facts are missing, or what failed, for logs
};

/// Facts about this host that judging needs.
struct HostFacts {
    std::string hostname;
    std::string boot_id; ///< empty when unreadable
};

/// What the kernel says of this boot's PID allocation. Each fact is unset when unreadable.
struct PidTableFacts {
    /// `processes` in /proc/stat: every fork and clone since boot, threads included.
    std::optional<std::uint64_t> forks_since_boot;
    /// /proc/sys/kernel/pid_max: PIDs are handed out below it.
    std::optional<std::uint64_t> pid_max;
    /// `btime` in /proc/stat: boot time by today's wall clock, truncated to the second.
    std::optional<Timestamp> boot_time;
    std::string detail; ///< what could not be read, for reasons and logs
};

/// Asks the OS about processes. Real and fake implementations exist.
class ProcessProbe {
public:
    virtual ~ProcessProbe() = default;
    /// Liveness and start time of `pid`.
    virtual ProcessFacts probe(std::int64_t pid) = 0;
    /// The PID table facts, read now. A probe that cannot tell returns them unset, which the
    /// judge reads as "a PID may have been reused".
    virtual PidTableFacts pid_table() { return {}; }
};

/// The real probe: kill(pid, 0), then `<proc_root>/<pid>/stat` for state and start time;
/// `<proc_root>/stat` and `<proc_root>/sys/kernel/pid_max` for the PID table.
class SystemProcessProbe final : public ProcessProbe {
public:
    explicit SystemProcessProbe(std::string proc_root = "/proc");
    ProcessFacts probe(std::int64_t pid) override;
    PidTableFacts pid_table() override;

private:
    std::string m_proc_root;
};

/// Start ticks (stat field 22) of the calling process, if readable.
std::optional<std::uint64_t> own_start_ticks();

/// This host's name and boot id (read once per call).
HostFacts read_host_facts();

/// Parses the text of /proc/<pid>/stat: state letter and field 22.
/// Fields are counted after the last ')' so a command name with spaces or ')' is safe.
struct StatFields {
    char state = '?';
    std::uint64_t start_ticks = 0;
};
std::optional<StatFields> parse_proc_stat(std::string_view text);

/// The `processes` and `btime` lines of /proc/stat's text; each unset when absent or malformed.
struct ProcStatTotals {
    std::optional<std::uint64_t> processes;
    std::optional<std::int64_t> btime; ///< seconds since the epoch
};
ProcStatTotals parse_proc_stat_totals(std::string_view text);

/// Converts a start time in ticks since boot to wall-clock time.
Timestamp ticks_to_wall_time(std::uint64_t start_ticks);

} // namespace agentlock
