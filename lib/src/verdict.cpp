#include <agentlock/verdict.hpp>

#include <agentlock/duration.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

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
    if (std::snprintf(text, sizeof text, "%c%lld.%03llds", ms < 0 ? '-' : '+',
                      static_cast<long long>(whole), static_cast<long long>(frac)) < 0) {
        return std::to_string(ms) + "ms";
    }
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

// Written before this boot? Exactly by our writer's boot id; else by acquired_at against btime.
enum class Boot { this_boot, before, unknown };

struct BootJudgement {
    Boot boot = Boot::this_boot;
    std::string why;
};

std::string step_text(const ClockFacts& clock) {
    return clock.last_step ? " (last by " + signed_seconds(clock.last_step->size) + " at " +
                                 format_rfc3339(clock.last_step->at) + ")"
                           : "";
}

BootJudgement judge_boot(const LockInfo& lock, const HostFacts& host, const ReuseFacts& reuse,
                         const TmuxFacts& tmux) {
    if (lock.boot_id && !host.boot_id.empty()) {
        if (*lock.boot_id != host.boot_id) {
            return {Boot::before, "written before the last reboot (boot id " + *lock.boot_id +
                                      ", now " + host.boot_id +
                                      "): no process or tmux server survives a reboot"};
        }
        return {};
    }
    const std::optional<Timestamp>& btime = reuse.pid_table.boot_time;
    if (!btime || lock.acquired_at >= *btime - k_boot_time_margin) {
        return {}; // no boot time, or not early enough: the other rules decide
    }
    const std::string times = "acquired at " + format_rfc3339(lock.acquired_at) + ", more than " +
                              std::to_string(k_boot_time_margin.count()) + " s before this boot (" +
                              format_rfc3339(*btime) + ")";
    // btime is today's reading of the boot moment: a forward step since the lock was written
    // moves it later, and would make a lock of this boot look older than the boot.
    if (reuse.clock.may_predate_a_step(lock.acquired_at)) {
        return {Boot::unknown, "the lock was " + times + ", but the wall clock was stepped" +
                                   step_text(reuse.clock) +
                                   " after it may have been written: acquired_at cannot be "
                                   "compared with the boot time"};
    }
    // A running tmux server started this boot: when its start time reads before the boot too,
    // the clock has moved forward since these times were written.
    if (tmux.state == TmuxState::ok && tmux.server_started &&
        *tmux.server_started < *btime - k_boot_time_margin) {
        return {Boot::unknown, "the lock was " + times +
                                   ", but so was the running tmux server's "
                                   "start (" +
                                   format_rfc3339(*tmux.server_started) +
                                   "): the wall clock has moved since they were written"};
    }
    return {Boot::before, times + ": no process or tmux server survives a reboot"};
}

// Does the recorded session still hold the lock? Only evidence decides "no".
enum class Hold { held, not_held, unknown };

struct HoldJudgement {
    Hold hold = Hold::unknown;
    std::string why;
};

// `created` (tmux's time of a server or session) reads later than acquired_at plus the slack.
// Both were written by the wall clock, so a step between the two writes (unknown unless seen)
// moves one against the other.
HoldJudgement created_after_lock(const std::string& what, Timestamp created, const LockInfo& lock,
                                 const TmuxEvidence& evidence, const ClockFacts& clock) {
    const std::string times = what + " was created at " + format_rfc3339(created) +
                              ", later than the lock was acquired (" +
                              format_rfc3339(lock.acquired_at) + ") plus " +
                              format_duration(evidence.created_slack) + " of slack";
    if (clock.may_predate_a_step(lock.acquired_at)) {
        return {Hold::unknown, times + ", but the wall clock was stepped" + step_text(clock) +
                                   " after the lock may have been written: the two times "
                                   "cannot be compared"};
    }
    return {Hold::not_held, times + ": not the one that took it"};
}

bool later_than_lock(Timestamp created, const LockInfo& lock, const TmuxEvidence& evidence) {
    return created > lock.acquired_at + evidence.created_slack;
}

// A time tmux printed that reads later than the moment its answer was read: not one tmux can have
// read from the clock, so nothing is concluded from it (taken at its word, a server "started" in
// the future is newer than every lock, and would hold none of them).
std::optional<HoldJudgement> unbelievable(const std::string& what, Timestamp time,
                                          const TmuxFacts& tmux) {
    if (!tmux.listed_at || time <= *tmux.listed_at + k_tmux_time_tolerance) {
        return std::nullopt;
    }
    return HoldJudgement{Hold::unknown,
                         what + " (" + format_rfc3339(time) + ") is later than tmux was asked (" +
                             format_rfc3339(*tmux.listed_at) + "): not a time tmux can have read"};
}

HoldJudgement judge_pane(const TmuxPane& pane, const LockInfo& lock, const TmuxFacts& tmux,
                         const TmuxEvidence& evidence, const ClockFacts& clock) {
    const std::string name = "pane " + pane.id;
    // Pane ids are never reused within a server's life, so a pane is as old as its server for
    // this purpose: only a newer server hands out the same %N again.
    if (!tmux.server_started) {
        return {Hold::unknown, name + " exists, but the tmux server's start time is unreadable: it "
                                      "may be a newer server's reused id"};
    }
    if (auto lie = unbelievable(name + " exists, but its tmux server's start time",
                                *tmux.server_started, tmux)) {
        return std::move(*lie);
    }
    if (later_than_lock(*tmux.server_started, lock, evidence)) {
        return created_after_lock(name + "'s tmux server", *tmux.server_started, lock, evidence,
                                  clock);
    }
    if (!pane.dead) {
        return {Hold::unknown, name + " exists, but whether its process has exited is unreadable"};
    }
    if (*pane.dead) {
        return {Hold::not_held, name + " is dead (its process exited; remain-on-exit keeps it)"};
    }
    return {Hold::held, name + " still exists"};
}

HoldJudgement judge_session(const TmuxSession& session, const LockInfo& lock, const TmuxFacts& tmux,
                            const TmuxEvidence& evidence, const ClockFacts& clock) {
    const std::string name = "session " + session.name + " (" + session.id + ")";
    // A session is never older than its server, so its own creation time covers the server's.
    if (!session.created) {
        return {Hold::unknown, name + " exists, but its creation time is unreadable"};
    }
    if (auto lie = unbelievable(name + " exists, but its creation time", *session.created, tmux)) {
        return std::move(*lie);
    }
    if (later_than_lock(*session.created, lock, evidence)) {
        return created_after_lock(name, *session.created, lock, evidence, clock);
    }
    if (session.panes > 0 && session.dead_panes == session.panes) {
        return {Hold::not_held, "every pane of " + name + " is dead (" +
                                    std::to_string(session.panes) + ", kept by remain-on-exit)"};
    }
    if (session.panes > 0 && session.dead_panes + session.unread_panes == session.panes) {
        return {Hold::unknown, name + " exists, but whether its panes' processes have exited is "
                                      "unreadable"};
    }
    return {Hold::held, name + " still exists"};
}

// Is `tmux` an answer from the server the lock records (when it records one)?
HoldJudgement judge_recorded_server(const LockInfo& lock, const TmuxFacts& tmux,
                                    const TmuxEvidence& evidence) {
    if (!lock.tmux_server_pid && !lock.tmux_socket) {
        return {Hold::held, ""}; // a Go lock: the configured server is the only one to ask
    }
    const std::string recorded =
        "the lock's tmux server (" +
        (lock.tmux_server_pid ? "PID " + std::to_string(*lock.tmux_server_pid) : "PID unknown") +
        (lock.tmux_socket ? ", socket " + *lock.tmux_socket : "") + ")";
    if (lock.tmux_server_pid && evidence.recorded_server) {
        switch (evidence.recorded_server->state) {
        case ProcessState::dead:
        case ProcessState::zombie:
            // A server's ids name nothing once it has exited, whatever another server lists.
            return {Hold::not_held, recorded + " is gone"};
        case ProcessState::alive:
        case ProcessState::unknown:
            break;
        }
    }
    if (tmux.state == TmuxState::unknown) {
        return {Hold::held, ""}; // the caller says tmux is unknown
    }
    const bool same_socket =
        lock.tmux_socket && !tmux.socket_path.empty() && *lock.tmux_socket == tmux.socket_path;
    if (tmux.state == TmuxState::ok && lock.tmux_server_pid && tmux.server_pid) {
        if (*tmux.server_pid == *lock.tmux_server_pid) {
            return {Hold::held, ""};
        }
        // Its PID was not seen dead: it may still run, its socket replaced by another server's.
        return {Hold::unknown,
                recorded + " was not the server asked (" +
                    (same_socket
                         ? "its socket is now served by PID " + std::to_string(*tmux.server_pid)
                         : "PID " + std::to_string(*tmux.server_pid) + " answered") +
                    ")"};
    }
    if (tmux.state == TmuxState::ok && lock.tmux_server_pid) {
        // An answer that names no server (tmux's "no current target": no sessions, so no line to
        // print #{pid} on) cannot be matched with the recorded server, whose PID was not seen
        // dead: that server may still list the pane.
        return {Hold::unknown, recorded + " was not seen dead, and the answer" +
                                   (same_socket ? " from its socket" : "") +
                                   " names no server PID to match it with"};
    }
    if (!same_socket) {
        return {Hold::unknown, recorded + " was not asked"};
    }
    if (tmux.state == TmuxState::no_server && lock.tmux_server_pid) {
        // No server on its socket, but its PID was not seen dead (it may have lost its socket).
        return {Hold::unknown, recorded + " is not listening on its socket, and its PID was not "
                                          "seen dead"};
    }
    return {Hold::held, ""};
}

HoldJudgement judge_holder(const LockInfo& lock, const TmuxFacts& tmux,
                           const TmuxEvidence& evidence, const ClockFacts& clock) {
    const std::string& session = lock.session_id;
    HoldJudgement server = judge_recorded_server(lock, tmux, evidence);
    if (server.hold != Hold::held) {
        return server;
    }
    switch (tmux.state) {
    case TmuxState::unknown:
        return {Hold::unknown, "session " + session + " cannot be checked: tmux state unknown (" +
                                   tmux.detail + ")"};
    case TmuxState::no_server:
        return {Hold::not_held, "session " + session + " is gone (no tmux server running)"};
    case TmuxState::ok:
        break;
    }
    std::vector<HoldJudgement> found;
    if (auto pane = tmux.panes.find(session); pane != tmux.panes.end()) {
        found.push_back(judge_pane(pane->second, lock, tmux, evidence, clock));
    }
    if (auto by_id = tmux.sessions.find(session); by_id != tmux.sessions.end()) {
        found.push_back(judge_session(by_id->second, lock, tmux, evidence, clock));
    }
    for (const auto& [id, listed] : tmux.sessions) {
        if (listed.name == session && id != session) {
            found.push_back(judge_session(listed, lock, tmux, evidence, clock));
        }
    }
    if (found.empty()) {
        if (tmux.has(session)) {
            return {Hold::unknown, "session " + session + " is listed without its details"};
        }
        return {Hold::not_held, "session " + session + " is gone"};
    }
    // Held when any match holds; "no" only when every match says no.
    for (Hold want : {Hold::held, Hold::unknown}) {
        for (auto& f : found) {
            if (f.hold == want) {
                return std::move(f);
            }
        }
    }
    return std::move(found.front());
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

bool needs_boot_time(const LockInfo& lock, const HostFacts& host) {
    const bool local = lock.hostname.empty() || lock.hostname == host.hostname;
    return local && !(lock.boot_id && !host.boot_id.empty());
}

Judgement judge_lock(const LockInfo& lock, const ProcessFacts& process, const TmuxFacts& tmux,
                     const HostFacts& host, const ReuseFacts& reuse, const TmuxEvidence& evidence) {
    if (!lock.hostname.empty() && lock.hostname != host.hostname) {
        return {Verdict::foreign, "written on host " + lock.hostname + ", this is " +
                                      host.hostname + ": its PID cannot be checked here"};
    }
    // Before anything that may still read as alive: a PID or a tmux id seen now is not the one
    // the lock recorded before a reboot.
    const BootJudgement boot = judge_boot(lock, host, reuse, tmux);
    if (boot.boot == Boot::before) {
        return {Verdict::stale, boot.why};
    }
    if (boot.boot == Boot::unknown) {
        return {Verdict::unknown, boot.why};
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

    const HoldJudgement holder = judge_holder(lock, tmux, evidence, reuse.clock);
    switch (holder.hold) {
    case Hold::unknown:
        return {Verdict::unknown, owner.why + "; " + holder.why};
    case Hold::held:
        return {owner.owner == Owner::alive ? Verdict::live : Verdict::held_by_session,
                owner.why + (owner.owner == Owner::alive ? " and " : " but ") + holder.why};
    case Hold::not_held:
        return {owner.owner == Owner::alive ? Verdict::orphaned : Verdict::stale,
                owner.why + (owner.owner == Owner::alive ? " but " : " and ") + holder.why};
    }
    return {Verdict::unknown, "unreachable"};
}

} // namespace agentlock
