#pragma once
// pidfds in one epoll set that the event loop waits on through a single Asio descriptor (an
// Asio descriptor per pidfd costs about 1 KiB of memory, which a fleet of 100,000 owners cannot
// afford). Each PID's exit is reported once, and its pidfd closed then.

#include <agentlock/fd.hpp>
#include <agentlock/result.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace agentlock::daemon {

/// pidfd_open(2) of `pid` (pidfds are always close-on-exec); -1 with errno set on failure.
int open_pidfd(std::int64_t pid);

/// A set of pidfds, by PID. Lives on the event loop thread.
class PidfdSet {
public:
    /// Called on the loop thread with a PID whose pidfd became readable (the process exited), or
    /// failed (`failed`); its pidfd is out of the set by then. It may add and remove PIDs.
    using OnReady = std::function<void(std::int64_t pid, bool failed)>;

    PidfdSet(boost::asio::io_context& io, OnReady on_ready);
    ~PidfdSet();
    PidfdSet(const PidfdSet&) = delete;
    PidfdSet& operator=(const PidfdSet&) = delete;

    /// Why no pidfd can be added (the epoll set could not be made), or empty.
    const std::string& error() const { return m_error; }
    /// Opens a pidfd for `pid` and waits on it. An io Error naming the PID otherwise; its code
    /// is ESRCH when the process is gone already.
    Status add(std::int64_t pid);
    /// Closes `pid`'s pidfd, if open.
    void remove(std::int64_t pid);
    bool contains(std::int64_t pid) const { return m_fds.count(pid) != 0; }
    /// Open pidfds.
    std::size_t size() const { return m_fds.size(); }
    /// Closes every pidfd and stops waiting (the loop may end).
    void clear();

private:
    void wait();
    void on_ready();

    OnReady m_on_ready;
    std::string m_error;
    std::map<std::int64_t, Fd> m_fds;
    std::unique_ptr<boost::asio::posix::stream_descriptor> m_epoll;
    bool m_waiting = false;
};

} // namespace agentlock::daemon
