#include "pid_watch.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
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

int open_pidfd(std::int64_t pid) {
    if (pid <= 0 || pid > INT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    return static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0U));
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
    : m_io(io), m_budget(budget), m_probe(probe), m_on_exit(std::move(on_exit)),
      m_enabled(enabled) {
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        m_epoll_error = std::string("epoll_create1: ") + std::strerror(errno);
        return;
    }
    m_epoll = std::make_unique<boost::asio::posix::stream_descriptor>(m_io, ep);
}

PidWatcher::~PidWatcher() {
    clear();
    if (m_epoll) {
        boost::system::error_code ec;
        m_epoll->cancel(ec);
        m_epoll->close(ec);
    }
}

void PidWatcher::clear() {
    for (auto& [pid, entry] : m_by_pid) {
        close_fd(entry);
    }
    m_by_pid.clear();
    m_by_worker.clear();
    m_unwatched.clear();
    if (m_epoll) {
        boost::system::error_code ec;
        m_epoll->cancel(ec); // nothing left to wait for (the loop may end)
    }
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
    if (!it->second.fd) {
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
    int fd = -1;
    if (!m_enabled) {
        why_unwatched = "pidfd not in use";
    } else if (m_open >= m_budget) {
        why_unwatched = "pidfd budget of " + std::to_string(m_budget) +
                        " reached (open-files limit): the owners beyond it are polled";
    } else if (!m_epoll) {
        why_unwatched = m_epoll_error;
    } else {
        fd = open_pidfd(pid);
        if (fd < 0) {
            const int err = errno;
            if (err == ESRCH) {
                // Gone between the judgement and now: judge its locks again at once.
                entry.exited = true;
                report(entry, pid_text(pid) + " exited before its pidfd was opened");
                return;
            }
            why_unwatched = "pidfd_open " + pid_text(pid) + ": " + std::strerror(err);
        } else {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = static_cast<std::uint64_t>(pid);
            if (::epoll_ctl(m_epoll->native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) {
                why_unwatched = "epoll_ctl " + pid_text(pid) + ": " + std::strerror(errno);
                ::close(fd);
                fd = -1;
            }
        }
    }
    if (fd < 0) {
        m_unwatched_reason = why_unwatched;
        for (const PathRef* w : entry.workers) {
            m_unwatched.insert(w->str());
        }
        return;
    }
    entry.fd.reset(fd);
    ++m_open;
    for (const PathRef* w : entry.workers) {
        m_unwatched.erase(w->str());
    }
    wait_for_exits();
    // The pidfd refers to whatever process holds the PID now: make sure it is the one judged.
    const OwnerRecheck again = verify_owner(m_probe, entry.owner);
    if (!again.same) {
        report(entry, again.why);
    }
}

void PidWatcher::wait_for_exits() {
    if (m_waiting || !m_epoll) {
        return;
    }
    m_waiting = true;
    m_epoll->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                            m_waiting = false;
                            if (ec == boost::asio::error::operation_aborted) {
                                return;
                            }
                            on_exits();
                            if (m_open > 0) {
                                wait_for_exits();
                            }
                        });
}

void PidWatcher::on_exits() {
    std::array<epoll_event, 256> ready{};
    int n = 0;
    do {
        n = ::epoll_wait(m_epoll->native_handle(), ready.data(), static_cast<int>(ready.size()), 0);
        for (int i = 0; i < n; ++i) {
            const auto pid = static_cast<std::int64_t>(ready[static_cast<std::size_t>(i)].data.u64);
            auto it = m_by_pid.find(pid);
            if (it == m_by_pid.end() || !it->second.fd) {
                continue; // closed meanwhile
            }
            // An event of a pidfd closed earlier in this batch may name a PID watched afresh
            // since: believe only the pidfd open now.
            pollfd p{it->second.fd.get(), POLLIN, 0};
            if (::poll(&p, 1, 0) != 1 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            Entry& e = it->second;
            close_fd(e);
            e.exited = true;
            report(e, (p.revents & POLLERR) != 0 ? "pidfd of " + pid_text(pid) + " failed"
                                                 : pid_text(pid) + " exited");
        }
    } while (n == static_cast<int>(ready.size()));
}

void PidWatcher::close_fd(Entry& entry) {
    if (!entry.fd) {
        return;
    }
    entry.fd.reset(); // closing it takes it out of the epoll set
    --m_open;
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
