#include <agentlock/verdict.hpp>

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

// Is the process that wrote the lock still running? Only evidence decides "dead".
OwnerJudgement judge_owner(const LockInfo& lock, const ProcessFacts& process,
                           const HostFacts& host) {
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
    if (*process.start_time > lock.acquired_at + k_start_time_margin) {
        return {Owner::dead,
                pid + " was reused: the process started at " + format_rfc3339(*process.start_time) +
                    ", after the lock was acquired at " + format_rfc3339(lock.acquired_at)};
    }
    return {Owner::alive, pid + " is alive"};
}

} // namespace

Judgement judge_lock(const LockInfo& lock, const ProcessFacts& process, const TmuxFacts& tmux,
                     const HostFacts& host) {
    if (!lock.hostname.empty() && lock.hostname != host.hostname) {
        return {Verdict::foreign, "written on host " + lock.hostname + ", this is " +
                                      host.hostname + ": its PID cannot be checked here"};
    }
    const OwnerJudgement owner = judge_owner(lock, process, host);
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
