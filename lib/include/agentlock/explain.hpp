#pragma once
// The evidence behind a verdict, step by step, for people asking why a lock is kept or removed.

#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/tmux_probe.hpp>

#include <optional>
#include <string>
#include <vector>

namespace agentlock {

/// One fact the staleness rule weighed: what was looked at ("pid", "start", "tmux", "host",
/// "boot") and what was found there, in words.
struct EvidenceStep {
    std::string topic;
    std::string finding;
};

/// The facts judge_lock weighed for `lock`, in this order: the PID's state, its start time
/// against acquired_at, the tmux server and session, the host, the boot. `tmux` is unset when
/// tmux was not asked; `tmux_server` names the server asked ("-L NAME", "-S PATH", "default").
/// Describes only: the verdict itself is judge_lock's.
std::vector<EvidenceStep> explain_lock(const LockInfo& lock, const ProcessFacts& process,
                                       const std::optional<TmuxFacts>& tmux,
                                       const std::string& tmux_server, const HostFacts& host);

} // namespace agentlock
