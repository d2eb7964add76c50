#pragma once
// The one staleness rule, used by acquire, check, status and the cleaner alike.

#include <agentlock/clock_watch.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/tmux_probe.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace agentlock {

enum class Verdict : std::uint8_t {
    live,            ///< owner alive (and its recorded session, if any, exists)
    stale,           ///< owner dead, zombie or reused, and no live session recorded: removable
    held_by_session, ///< owner dead but its recorded tmux session exists: kept
    orphaned,        ///< owner alive, recorded session absent: kept, reported
    foreign,         ///< written on another host: never judged by PID, never removed
    /// fleet mode: written on a host whose presence key has been missing from etcd for
    /// host_gone_after, with etcd answering all along; reported, removed only when configured
    host_gone,
    invalid, ///< unparseable, not a regular file, too large: reported, never removed
    unknown, ///< depends on a tmux state or /proc read that failed: kept
};

std::string_view to_string(Verdict verdict); ///< "live", "held-by-session", ...

/// A verdict and the human reason behind it.
struct Judgement {
    Verdict verdict = Verdict::unknown;
    std::string reason;
};

/// How much later than acquired_at a process may appear to have started and still be the owner
/// (start ticks and boot time are coarse). Only for locks without start ticks; it covers ticks and
/// clock reads, not a step of the wall clock since the lock was written.
inline constexpr std::chrono::milliseconds k_start_time_margin{2000};

/// The lowest PID the kernel hands out again once PIDs have wrapped past pid_max
/// (RESERVED_PIDS in the kernel's kernel/pid.c).
inline constexpr std::uint64_t k_reserved_pids = 300;

/// Whether no PID can have been handed out twice since boot: forks_since_boot + k_reserved_pids
/// < pid_max. The kernel hands out PIDs 1, 2, ... pid_max - 1 in turn, and only the allocation
/// after pid_max - 1 wraps (to k_reserved_pids), so fewer than pid_max allocations leave every
/// PID given at most once; forks_since_boot counts threads and kernel threads too, and the
/// reserved range is kept as slack. False when a fact is unset.
bool pid_table_rules_out_reuse(const PidTableFacts& table);

/// The owner a supervisor last judged alive for this same worker's lock, by PID and start ticks.
/// Ticks count from boot, so a wall-clock step does not move them.
struct KnownOwner {
    std::int64_t pid = 0;
    std::uint64_t start_ticks = 0;
};

/// What settles "was this PID reused?" beyond the lock and its owner's probe. Every fact defaults
/// to "not known", which only ever leaves the older rule in place.
struct ReuseFacts {
    PidTableFacts pid_table; ///< read after the owner was probed (see needs_pid_table)
    ClockFacts clock;        ///< wall-clock steps seen while running
    std::optional<KnownOwner> known_owner; ///< from an earlier judgement of this lock, this boot
};

/// The default of tmux_created_slack: how much later than acquired_at a tmux server or session may
/// have been created and still hold the lock. A launcher may write the lock first and create the
/// session after it (gastown's own start-up takes seconds; a slow one, tens), and tmux's times are
/// whole seconds; a minute covers that and small wall-clock corrections, and costs only that a
/// server restarted within a minute of a lock keeps it (kept, never removed).
inline constexpr std::chrono::seconds k_default_tmux_created_slack{60};

/// How much later than the moment its answer was read (TmuxFacts::listed_at) a time tmux prints
/// may read and still be believed. tmux reads its times from the same wall clock before it answers
/// and truncates them to whole seconds, so an honest time is never later; the tolerance covers a
/// small correction of the clock backwards in between. A later time (a tmux that lies, or a clock
/// stepped back by more since the server started) decides nothing: unknown, kept.
inline constexpr std::chrono::seconds k_tmux_time_tolerance{5};

/// How much earlier than this boot (btime) a lock without a boot id must have been acquired to
/// count as written before it. btime is the wall clock's current reading of the boot moment, so a
/// forward step since the lock was written moves it later; the margin covers the corrections of
/// the first minutes after a boot (an NTP or RTC sync).
inline constexpr std::chrono::seconds k_boot_time_margin{300};

/// What the judge needs besides the tmux listing to tell whether a recorded session is the one
/// that took the lock.
struct TmuxEvidence {
    /// A server or session created more than this after acquired_at is not the lock's.
    std::chrono::milliseconds created_slack = k_default_tmux_created_slack;
    /// The process probe's answer for the lock's tmux_server_pid, when it records one; unset: not
    /// probed (then that server is never taken as gone).
    std::optional<ProcessFacts> recorded_server;
};

/// Whether judging `lock` with `process` may use ReuseFacts::pid_table: only a lock without start
/// ticks whose live owner's start time reads later than acquired_at plus the margin. Callers read
/// the PID table (ProcessProbe::pid_table) after the probe and only then: /proc/stat is too dear
/// to read for every lock.
bool needs_pid_table(const LockInfo& lock, const ProcessFacts& process);

/// Whether judging `lock` needs the boot time (ReuseFacts::pid_table.boot_time): a lock of this
/// host without a boot id that decides (ours, and this host's boot id readable). It changes only
/// by clock steps, so callers may read it once per pass.
bool needs_boot_time(const LockInfo& lock, const HostFacts& host);

/// Judges one parsed lock. Pure: every fact is passed in.
Judgement judge_lock(const LockInfo& lock, const ProcessFacts& process, const TmuxFacts& tmux,
                     const HostFacts& host, const ReuseFacts& reuse = {},
                     const TmuxEvidence& evidence = {});

/// Only a stale lock may ever be removed.
inline bool is_removable(Verdict verdict) {
    return verdict == Verdict::stale;
}

/// Fleet mode with remove_host_gone: a host-gone lock may be removed too.
inline bool is_removable_with_host_gone(Verdict verdict) {
    return verdict == Verdict::stale || verdict == Verdict::host_gone;
}

} // namespace agentlock
