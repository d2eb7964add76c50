#pragma once
// Owner-death events: one pidfd per live owner PID, all in one PidfdSet. A pidfd only says
// "judge these locks again now"; it never decides anything.

#include "pidfd_set.hpp"
#include <agentlock/lock_table.hpp>
#include <agentlock/monitor.hpp>
#include <agentlock/path_ref.hpp>
#include <agentlock/process_probe.hpp>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>

namespace agentlock::daemon {

/// Whether a PID still belongs to the owner that was judged, probed right after pidfd_open.
struct OwnerRecheck {
    bool same = true;
    std::string why; ///< when not the same: why the lock must be judged again now
};

/// Probes `owner.pid` again and compares it with what was judged. The PID can die, or die and
/// be reused, between the judgement and pidfd_open: a dead or zombie process, other start ticks,
/// or an answer that cannot be trusted (unknown, start time unreadable) all mean "judge again".
OwnerRecheck verify_owner(ProcessProbe& probe, const Owner& owner);

/// Why pidfds cannot be used here (pidfd_open of ourselves fails), or empty when they can.
std::string pidfd_unavailable();

/// Holds a pidfd for each live owner and reports the workers whose owner exited. Lives on the
/// event loop thread.
class PidWatcher final : public OwnerWatch {
public:
    /// Called (posted to the loop) with the workers to judge again and the reason.
    using OnExit =
        std::function<void(const std::set<std::string>& workers, const std::string& why)>;

    /// `budget` is the most pidfds held at once; `probe` re-verifies owners after pidfd_open.
    /// With `enabled` false no pidfd is ever opened: every owner is left to polling.
    PidWatcher(boost::asio::io_context& io, std::size_t budget, ProcessProbe& probe, OnExit on_exit,
               bool enabled = true);
    ~PidWatcher() override;
    PidWatcher(const PidWatcher&) = delete;
    PidWatcher& operator=(const PidWatcher&) = delete;

    /// Records that `worker`'s lock is owned by `owner`, alive when judged, or by no live owner
    /// (nullopt). Opens a pidfd for a new PID (one per PID, shared by the workers it holds) and
    /// closes the pidfd of a PID that no longer owns anything.
    void set_owner(const std::string& worker, const std::optional<Owner>& owner) override;

    /// Records that every worker `gone` selects has no live owner any more.
    void forget_if(const std::function<bool(const std::string& worker)>& gone) override;

    /// Workers whose live owner has no pidfd (budget spent, or pidfd_open failed): to be polled.
    const std::set<std::string>& unwatched() const override { return m_unwatched; }
    /// Why the last owner went unwatched (for the log), empty if none ever did.
    const std::string& unwatched_reason() const { return m_unwatched_reason; }
    /// PIDs with an open pidfd.
    std::size_t open_count() const { return m_set.size(); }
    /// Closes every pidfd and forgets every owner.
    void clear();
    /// Turns pidfds on or off (off: clear(), and every owner is left to polling from now on).
    void set_enabled(bool enabled);

private:
    struct Entry {
        Owner owner;
        /// Its workers: keys of m_by_worker (a map: they stay put), not copies, since one PID
        /// may hold thousands.
        std::unordered_set<const PathRef*> workers;
        bool exited = false; ///< its pidfd fired: the workers are being judged again
    };

    void detach(const std::string& worker);
    void open_for(Entry& entry);
    void close_fd(Entry& entry);
    /// Posts the names of `entry`'s workers to on_exit with `why`.
    void report(const Entry& entry, std::string why);
    void handle_exit(std::int64_t pid, bool failed);
    static std::set<std::string> names_of(const Entry& entry);

    boost::asio::io_context& m_io;
    std::size_t m_budget;
    ProcessProbe& m_probe;
    OnExit m_on_exit;
    bool m_enabled;
    std::map<std::int64_t, Entry> m_by_pid;
    std::map<PathRef, std::int64_t, PathLess> m_by_worker; // pooled paths, shared
    std::set<std::string> m_unwatched;
    std::string m_unwatched_reason;
    PidfdSet m_set; ///< last: closed before the entries go
};

/// The pidfd budget for an open-files limit: the limit minus headroom for the walk, tmux
/// queries, inotify and logging (an eighth of the limit, at least 256; half of a small limit).
std::size_t pidfd_budget(std::uint64_t nofile_limit);

} // namespace agentlock::daemon
