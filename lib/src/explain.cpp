#include <agentlock/explain.hpp>

#include <agentlock/verdict.hpp>

namespace agentlock {

namespace {

std::string pid_step(const LockInfo& lock, const ProcessFacts& process) {
    const std::string pid = "PID " + std::to_string(lock.pid);
    if (lock.pid <= 0) {
        return pid + " is not a valid process id";
    }
    switch (process.state) {
    case ProcessState::alive:
        return pid + " is running";
    case ProcessState::dead:
        return pid + " is not running (no such process)";
    case ProcessState::zombie:
        return pid + " has exited (a zombie not yet reaped)";
    case ProcessState::unknown:
        return pid + " could not be probed: " + process.detail;
    }
    return pid + ": unknown state";
}

std::string start_step(const LockInfo& lock, const ProcessFacts& process) {
    const std::string acquired = "acquired_at " + format_rfc3339(lock.acquired_at);
    if (process.state != ProcessState::alive) {
        return "not compared: the process is not running (" + acquired + ")";
    }
    if (lock.pid_start_ticks) {
        if (!process.start_ticks) {
            return "unreadable (" + process.detail + "); the lock recorded start ticks " +
                   std::to_string(*lock.pid_start_ticks);
        }
        if (*process.start_ticks != *lock.pid_start_ticks) {
            return "start ticks " + std::to_string(*process.start_ticks) +
                   " differ from the lock's " + std::to_string(*lock.pid_start_ticks) +
                   ": the PID was reused by another process";
        }
        return "start ticks " + std::to_string(*process.start_ticks) +
               " match the lock's: the process that took the lock";
    }
    if (!process.start_time) {
        return "unreadable (" + process.detail + "); " + acquired;
    }
    const std::string started = "started " + format_rfc3339(*process.start_time);
    if (*process.start_time > lock.acquired_at + k_start_time_margin) {
        return started + ", after " + acquired + ": the PID was reused by another process";
    }
    return started + ", not after " + acquired + ": can be the process that took the lock";
}

std::string tmux_step(const LockInfo& lock, const std::optional<TmuxFacts>& tmux,
                      const std::string& server) {
    if (lock.session_id.empty()) {
        return "not asked: the lock records no session";
    }
    const std::string session = "session " + lock.session_id;
    if (!tmux) {
        return "not asked (tmux server " + server + "); " + session + " not checked";
    }
    switch (tmux->state) {
    case TmuxState::ok:
        return "server " + server + " answered: " + session +
               (tmux->has(lock.session_id) ? " exists" : " is gone");
    case TmuxState::no_server:
        return "no server " + server + " is running: " + session + " is gone";
    case TmuxState::unknown:
        return "server " + server + " state unknown (" + tmux->detail + "): " + session +
               " cannot be checked";
    }
    return "unknown";
}

std::string host_step(const LockInfo& lock, const HostFacts& host) {
    if (lock.hostname.empty()) {
        return "the lock records no host: taken as this host (" + host.hostname + ")";
    }
    if (lock.hostname == host.hostname) {
        return "written on this host (" + host.hostname + ")";
    }
    return "written on host " + lock.hostname + ", this is " + host.hostname +
           ": its PID cannot be checked here";
}

std::string boot_step(const LockInfo& lock, const HostFacts& host) {
    if (!lock.boot_id) {
        return "the lock records no boot id: the PID and its start time decide";
    }
    if (host.boot_id.empty()) {
        return "this host's boot id is unreadable: the PID and its start time decide";
    }
    if (*lock.boot_id != host.boot_id) {
        return "written before the last reboot (boot id " + *lock.boot_id + ", now " +
               host.boot_id + "): its owner is gone";
    }
    return "written since the last boot (boot id " + host.boot_id + ")";
}

} // namespace

std::vector<EvidenceStep> explain_lock(const LockInfo& lock, const ProcessFacts& process,
                                       const std::optional<TmuxFacts>& tmux,
                                       const std::string& tmux_server, const HostFacts& host) {
    return {
        {"pid", pid_step(lock, process)},
        {"start", start_step(lock, process)},
        {"tmux", tmux_step(lock, tmux, tmux_server)},
        {"host", host_step(lock, host)},
        {"boot", boot_step(lock, host)},
    };
}

} // namespace agentlock
