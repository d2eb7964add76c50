#pragma once
// The one staleness rule, used by acquire, check, status and the cleaner alike.

#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/tmux_probe.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace agentlock {

enum class Verdict {
    live,            ///< owner alive (and its recorded session, if any, exists)
    stale,           ///< owner dead, zombie or reused, and no live session recorded: removable
    held_by_session, ///< owner dead but its recorded tmux session exists: kept
    orphaned,        ///< owner alive, recorded session absent: kept, reported
    foreign,         ///< written on another host: never judged by PID, never removed
    invalid,         ///< unparseable, not a regular file, too large: reported, never removed
    unknown,         ///< depends on a tmux state or /proc read that failed: kept
};

std::string_view to_string(Verdict verdict); ///< "live", "held-by-session", ...

/// A verdict and the human reason behind it.
struct Judgement {
    Verdict verdict = Verdict::unknown;
    std::string reason;
};

/// How much later than acquired_at a process may appear to have started and still be the owner
/// (start ticks and boot time are coarse).
inline constexpr std::chrono::milliseconds k_start_time_margin{2000};

/// Judges one parsed lock. Pure: every fact is passed in.
Judgement judge_lock(const LockInfo& lock, const ProcessFacts& process, const TmuxFacts& tmux,
                     const HostFacts& host);

/// Only a stale lock may ever be removed.
inline bool is_removable(Verdict verdict) {
    return verdict == Verdict::stale;
}

} // namespace agentlock
