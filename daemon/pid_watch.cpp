#include "pid_watch.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace agentlock::daemon {

namespace {

std::string pid_text(std::int64_t pid) {
    return "PID " + std::to_string(pid);
}

} // namespace

OwnerRecheck verify_owner(ProcessProbe& probe, const Owner& owner) {
    const ProcessFacts now = probe.probe(owner.pid);
    const std::string pid = pid_text(owner.pid);
    switch (now.state) {
    case ProcessState::dead:
        return {false, pid + " exited before its pidfd was opened"};
    case ProcessState::zombie:
        return {false, pid + " is a zombie"};
    case ProcessState::unknown:
        return {false, pid + " could not be probed after pidfd_open: " + now.detail};
    case ProcessState::alive:
        break;
    }
    if (owner.start_ticks) {
        if (!now.start_ticks) {
            return {false, pid + " has an unreadable start time after pidfd_open"};
        }
        if (*now.start_ticks != *owner.start_ticks) {
            return {false, pid + " was reused before its pidfd was opened: start ticks " +
                               std::to_string(*now.start_ticks) + ", judged " +
                               std::to_string(*owner.start_ticks)};
        }
    }
    return {true, {}};
}

std::string pidfd_unavailable() {
    Fd probe(open_pidfd(::getpid()));
    if (probe) {
        return {};
    }
    const int err = errno;
    return std::string("pidfd_open: ") + std::strerror(err) +
           (err == ENOSYS ? " (Linux 5.3 or later needed)" : "");
}

std::size_t pidfd_budget(std::uint64_t nofile_limit) {
    if (nofile_limit < 2048) {
        return static_cast<std::size_t>(nofile_limit / 2);
    }
    const std::uint64_t headroom = std::max<std::uint64_t>(256, nofile_limit / 8);
    return static_cast<std::size_t>(nofile_limit - headroom);
}

PidWatcher::PidWatcher(boost::asio::io_context& io, std::size_t budget, ProcessProbe& probe,
                       OnExit on_exit, bool enabled)
    : m_io(io), m_budget(budget), m_probe(probe), m_on_exit(std::move(on_exit)), m_enabled(enabled),
      m_set(io, [this](std::int64_t pid, bool failed) { handle_exit(pid, failed); }) {}

PidWatcher::~PidWatcher() {
    clear();
}

void PidWatcher::clear() {
    m_set.clear();
    m_by_pid.clear();
    m_by_worker.clear();
    m_unwatched.clear();
}

void PidWatcher::set_enabled(bool enabled) {
    if (enabled == m_enabled) {
        return;
    }
    clear();
    m_enabled = enabled;
}

void PidWatcher::set_owner(const std::string& worker, const std::optional<Owner>& owner) {
    auto known = m_by_worker.find(worker);
    if (known != m_by_worker.end() && owner && known->second == owner->pid) {
        Entry& entry = m_by_pid.at(owner->pid);
        if (entry.owner == *owner) {
            if (entry.exited) {
                // Judged alive again after its pidfd fired (it was not yet reaped, say): watch
                // the PID afresh rather than trust a pidfd that has already fired.
                entry.exited = false;
                close_fd(entry);
                open_for(entry);
            }
            return;
        }
    }
    detach(worker);
    if (!owner) {
        return;
    }
    auto it = m_by_pid.find(owner->pid);
    if (it != m_by_pid.end() && !(it->second.owner == *owner)) {
        // Two judgements disagree on which process holds this PID: one of them saw a reused
        // PID. Trust the newer one, and judge the others' locks again.
        report(it->second, pid_text(owner->pid) + " now has other start ticks");
        for (const auto& w : names_of(it->second)) {
            detach(w);
        }
        it = m_by_pid.end();
    }
    const PathRef* key = &m_by_worker.insert_or_assign(PathRef(worker), owner->pid).first->first;
    if (it == m_by_pid.end()) {
        Entry entry;
        entry.owner = *owner;
        it = m_by_pid.emplace(owner->pid, std::move(entry)).first;
        it->second.workers.insert(key);
        open_for(it->second);
        return;
    }
    it->second.workers.insert(key);
    if (it->second.exited) {
        // Its pidfd has already fired: this lock was judged alive just before the owner died,
        // and a fired pidfd never fires again. Watch the PID afresh, as for a worker judged alive
        // again above: a PID that is gone, or a zombie, is reported at once.
        it->second.exited = false;
        close_fd(it->second);
        open_for(it->second);
        return;
    }
    if (!m_set.contains(owner->pid)) {
        m_unwatched.insert(worker);
    }
}

void PidWatcher::forget_if(const std::function<bool(const std::string& worker)>& gone) {
    std::vector<std::string> forgotten;
    for (const auto& [worker, pid] : m_by_worker) {
        std::string path = worker.str();
        if (gone(path)) {
            forgotten.push_back(std::move(path));
        }
    }
    for (const auto& worker : forgotten) {
        set_owner(worker, std::nullopt);
    }
}

std::set<std::string> PidWatcher::names_of(const Entry& entry) {
    std::set<std::string> names;
    for (const PathRef* w : entry.workers) {
        names.insert(w->str());
    }
    return names;
}

void PidWatcher::detach(const std::string& worker) {
    m_unwatched.erase(worker);
    auto known = m_by_worker.find(worker);
    if (known == m_by_worker.end()) {
        return;
    }
    const std::int64_t pid = known->second;
    const PathRef* key = &known->first;
    auto it = m_by_pid.find(pid);
    if (it != m_by_pid.end()) {
        it->second.workers.erase(key);
        if (it->second.workers.empty()) {
            close_fd(it->second);
            m_by_pid.erase(it);
        }
    }
    m_by_worker.erase(known);
}

void PidWatcher::open_for(Entry& entry) {
    const std::int64_t pid = entry.owner.pid;
    std::string why_unwatched;
    if (!m_enabled) {
        why_unwatched = "pidfd not in use";
    } else if (m_set.size() >= m_budget) {
        why_unwatched = "pidfd budget of " + std::to_string(m_budget) +
                        " reached (open-files limit): the owners beyond it are polled";
    } else if (Status added = m_set.add(pid); !added) {
        if (added.error().code == std::errc::no_such_process) {
            // Gone between the judgement and now: judge its locks again at once.
            entry.exited = true;
            report(entry, pid_text(pid) + " exited before its pidfd was opened");
            return;
        }
        why_unwatched = added.error().message;
    }
    if (!why_unwatched.empty()) {
        m_unwatched_reason = why_unwatched;
        for (const PathRef* w : entry.workers) {
            m_unwatched.insert(w->str());
        }
        return;
    }
    for (const PathRef* w : entry.workers) {
        m_unwatched.erase(w->str());
    }
    // The pidfd refers to whatever process holds the PID now: make sure it is the one judged.
    const OwnerRecheck again = verify_owner(m_probe, entry.owner);
    if (!again.same) {
        report(entry, again.why);
    }
}

void PidWatcher::handle_exit(std::int64_t pid, bool failed) {
    auto it = m_by_pid.find(pid);
    if (it == m_by_pid.end()) {
        return; // forgotten meanwhile
    }
    it->second.exited = true;
    report(it->second,
           failed ? "pidfd of " + pid_text(pid) + " failed" : pid_text(pid) + " exited");
}

void PidWatcher::close_fd(Entry& entry) {
    m_set.remove(entry.owner.pid);
}

void PidWatcher::report(const Entry& entry, std::string why) {
    if (entry.workers.empty()) {
        return;
    }
    std::set<std::string> workers = names_of(entry);
    // Posted, so that the caller never re-enters set_owner from its own loop.
    boost::asio::post(m_io, [this, workers = std::move(workers), why = std::move(why)]() {
        m_on_exit(workers, why);
    });
}

} // namespace agentlock::daemon
