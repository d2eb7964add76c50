#include <agentlock/verdict.hpp>

#include <cstdio>
#include <string>

namespace agentlock {

std::string_view to_string(Verdict verdict) {
    switch (verdict) {
    case Verdict::live:
        return "live";
    case Verdict::stale:
        return "stale";
    case Verdict::held_by_session:
        return "held-by-session";
    case Verdict::orphaned:
        return "orphaned";
    case Verdict::foreign:
        return "foreign";
    case Verdict::host_gone:
        return "host-gone";
    case Verdict::invalid:
        return "invalid";
    case Verdict::unknown:
        return "unknown";
    }
    return "unknown";
}

namespace {

enum class Owner { alive, dead, unknown };

struct OwnerJudgement {
    Owner owner = Owner::unknown;
    std::string why;
};

std::string pid_text(std::int64_t pid) {
    return "PID " + std::to_string(pid);
}

// "+60.000s", "-0.250s": a step's size for a reason.
std::string signed_seconds(std::chrono::nanoseconds d) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    const auto whole = (ms < 0 ? -ms : ms) / 1000;
    const auto frac = (ms < 0 ? -ms : ms) % 1000;
    char text[48];
    std::snprintf(text, sizeof text, "%c%lld.%03llds", ms < 0 ? '-' : '+',
                  static_cast<long long>(whole), static_cast<long long>(frac));
    return text;
}

// The start time of a live owner, by today's clock, reads later than acquired_at allows.
bool start_time_says_reused(const LockInfo& lock, const ProcessFacts& process) {
    return !lock.pid_start_ticks && process.state == ProcessState::alive && process.start_time &&
           *process.start_time > lock.acquired_at + k_start_time_margin;
}

// Whether the lock was written during this boot: by the boot id our writer records, else by
// acquired_at against the boot time (btime is truncated to the second, so a second is added).
bool written_this_boot(const LockInfo& lock, const HostFacts& host, const PidTableFacts& table) {
    if (lock.boot_id && !host.boot_id.empty()) {
        return *lock.boot_id == host.boot_id;
    }
    return table.boot_time && lock.acquired_at >= *table.boot_time + std::chrono::seconds(1);
}

// Is the process that wrote the lock still running? Only evidence decides "dead".
OwnerJudgement judge_owner(const LockInfo& lock, const ProcessFacts& process, const HostFacts& host,
                           const ReuseFacts& reuse) {
    const std::string pid = pid_text(lock.pid);
    if (lock.boot_id && !host.boot_id.empty() && *lock.boot_id != host.boot_id) {
        return {Owner::dead, "written before the last reboot (boot id " + *lock.boot_id + ", now " +
                                 host.boot_id + ")"};
    }
    if (lock.pid <= 0) {
        return {Owner::dead, pid + " is not a valid process id"};
    }
    switch (process.state) {
    case ProcessState::dead:
        return {Owner::dead, pid + " is dead"};
    case ProcessState::zombie:
        return {Owner::dead, pid + " is a zombie"};
    case ProcessState::unknown:
        return {Owner::unknown, pid + " could not be probed: " + process.detail};
    case ProcessState::alive:
        break;
    }
    // Alive: but is it still the process that wrote the lock?
    if (lock.pid_start_ticks) {
        if (!process.start_ticks) {
            return {Owner::unknown,
                    pid + " is alive but its start time is unreadable (" + process.detail + ")"};
        }
        if (*process.start_ticks != *lock.pid_start_ticks) {
            return {Owner::dead, pid + " was reused: start ticks " +
                                     std::to_string(*process.start_ticks) + ", lock recorded " +
                                     std::to_string(*lock.pid_start_ticks)};
        }
        return {Owner::alive, pid + " is alive (start time matches the lock)"};
    }
    if (!process.start_time) {
        return {Owner::unknown,
                pid + " is alive but its start time is unreadable (" + process.detail + ")"};
    }
    if (!start_time_says_reused(lock, process)) {
        return {Owner::alive, pid + " is alive"};
    }
    // By the two wall-clock times, the PID was reused. Those times were read by the clock as it
    // was when each was written; a step of the clock in between looks exactly like a reuse.
    // Evidence that does not depend on the wall clock decides first.
    const std::string times = "the process started at " + format_rfc3339(*process.start_time) +
                              ", after the lock was acquired at " +
                              format_rfc3339(lock.acquired_at);
    if (reuse.known_owner && reuse.known_owner->pid == lock.pid && process.start_ticks &&
        *process.start_ticks == reuse.known_owner->start_ticks) {
        return {Owner::alive, pid + " is alive: the same process (start ticks " +
                                  std::to_string(*process.start_ticks) +
                                  ") was judged this lock's owner before, although by today's "
                                  "clock " +
                                  times};
    }
    if (written_this_boot(lock, host, reuse.pid_table) &&
        pid_table_rules_out_reuse(reuse.pid_table)) {
        return {Owner::alive, pid + " is alive and no PID has been handed out twice since boot (" +
                                  std::to_string(*reuse.pid_table.forks_since_boot) +
                                  " forks, pid_max " + std::to_string(*reuse.pid_table.pid_max) +
                                  "), although by today's clock " + times};
    }
    if (reuse.clock.may_predate_a_step(lock.acquired_at)) {
        const std::string last = reuse.clock.last_step
                                     ? " (last by " + signed_seconds(reuse.clock.last_step->size) +
                                           " at " + format_rfc3339(reuse.clock.last_step->at) + ")"
                                     : "";
        return {Owner::unknown, pid + " is alive and " + times +
                                    ", but the wall clock was stepped" + last +
                                    " after the lock may have been written: the start time "
                                    "cannot be compared with acquired_at"};
    }
    return {Owner::dead, pid + " was reused: " + times};
}

} // namespace

bool pid_table_rules_out_reuse(const PidTableFacts& table) {
    // Both sides unsigned; written as a subtraction so that a huge count cannot wrap the sum.
    return table.forks_since_boot && table.pid_max && *table.pid_max > k_reserved_pids &&
           *table.forks_since_boot < *table.pid_max - k_reserved_pids;
}

bool needs_pid_table(const LockInfo& lock, const ProcessFacts& process) {
    return start_time_says_reused(lock, process);
}

Judgement judge_lock(const LockInfo& lock, const ProcessFacts& process, const TmuxFacts& tmux,
                     const HostFacts& host, const ReuseFacts& reuse) {
    if (!lock.hostname.empty() && lock.hostname != host.hostname) {
        return {Verdict::foreign, "written on host " + lock.hostname + ", this is " +
                                      host.hostname + ": its PID cannot be checked here"};
    }
    const OwnerJudgement owner = judge_owner(lock, process, host, reuse);
    if (owner.owner == Owner::unknown) {
        return {Verdict::unknown, owner.why};
    }

    const std::string& session = lock.session_id;
    if (session.empty()) {
        if (owner.owner == Owner::alive) {
            return {Verdict::live, owner.why};
        }
        return {Verdict::stale, owner.why + " and no session is recorded"};
    }

    const std::string quoted = "session " + session;
    switch (tmux.state) {
    case TmuxState::unknown:
        return {Verdict::unknown, owner.why + "; " + quoted +
                                      " cannot be checked: tmux state unknown (" + tmux.detail +
                                      ")"};
    case TmuxState::no_server:
    case TmuxState::ok: {
        const bool session_lives = tmux.state == TmuxState::ok && tmux.has(session);
        const std::string where = tmux.state == TmuxState::ok ? "" : " (no tmux server running)";
        if (owner.owner == Owner::alive) {
            if (session_lives) {
                return {Verdict::live, owner.why + " and " + quoted + " exists"};
            }
            return {Verdict::orphaned, owner.why + " but " + quoted + " is gone" + where};
        }
        if (session_lives) {
            return {Verdict::held_by_session, owner.why + " but " + quoted + " still exists"};
        }
        return {Verdict::stale, owner.why + " and " + quoted + " is gone" + where};
    }
    }
    return {Verdict::unknown, "unreachable"};
}

} // namespace agentlock
