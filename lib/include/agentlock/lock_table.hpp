#pragma once
// The supervisor's current view of every lock: what the last full pass saw, updated by each
// event-driven re-check. It decides nothing; it says which owners to watch, which sessions to
// look for, and which claims collide now.

#include <agentlock/collisions.hpp>
#include <agentlock/pass.hpp>

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace agentlock {

/// The owner of a lock as it was judged alive (verdict live or orphaned).
struct Owner {
    std::int64_t pid = 0;
    std::optional<std::uint64_t> start_ticks; ///< what the process probe saw when judging

    bool operator==(const Owner&) const = default;
};

/// A lock that records a tmux session and waits on it: held-by-session (removable once the
/// session is gone), or unknown because tmux could not be asked.
struct SessionWait {
    std::string worker;
    std::string session_id;
    bool tmux_was_unknown = false; ///< judged while tmux's state was unknown
    /// The server it was judged against (its root's, or the one the lock records), when known;
    /// unset: its root's.
    std::optional<ServerRef> server;
};

/// Every lock the supervisor knows, by worker, as the summaries of their last judgements.
class LockTable {
public:
    /// Replaces everything with what a full pass saw, taking its summaries (removed locks are
    /// gone); `report.summaries` is left empty. Owners are for the caller to update.
    void replace(PassReport& report);
    /// Applies one re-check: a lock found and kept is stored, one removed or absent is
    /// forgotten; an unreachable worker is left as it was.
    void apply(const WorkerCheck& check);

    /// The lock of `worker`, if known.
    const LockSummary* find(std::string_view worker) const;
    /// The owner to watch for `worker`: set when its lock was judged live or orphaned (owner
    /// alive, on this host).
    std::optional<Owner> owner_of(std::string_view worker) const;
    /// Locks waiting on a tmux session.
    std::vector<SessionWait> session_waits() const;
    /// Whether any lock waits on a tmux session (session_waits() would not be empty).
    bool has_session_waits() const;
    /// Whether some waiting lock has no process to watch (no hold known, or its server could
    /// not be asked or gave no pid): only asking tmux again tells when it is free.
    bool has_unwatched_waits() const;
    /// The processes the waiting locks' holds depend on (TmuxHold::pids): pane processes and
    /// tmux servers.
    std::set<std::int64_t> tmux_pids() const;
    /// The hold of `worker`'s lock, if it waits on a session and the judgement said on what.
    const TmuxHold* hold_of(std::string_view worker) const;
    /// A fresh answer of `server`: the holds judged against it take their processes from it
    /// (none when no server runs), so that a pane that ended or began since is watched as it
    /// is. An unknown answer changes nothing: what the last answer named stays watched.
    void refresh_holds(const ServerRef& server, const TmuxFacts& fresh);
    /// Known workers under `path` (or equal to it).
    std::vector<std::string> workers_under(const std::string& path) const;
    /// Every known worker.
    std::vector<std::string> workers() const;
    /// Calls `f` with every known worker, in order, without copying them.
    void for_each_worker(const std::function<void(const std::string& worker)>& f) const;
    /// Duplicate claims (session, PID) among the known locks, as a pass would detect them.
    std::vector<Collision> collisions() const;
    /// The deepest known worker below its root (0 when none).
    unsigned deepest_worker(const std::vector<std::string>& roots) const;

    /// tmux's answer in the last full pass.
    const TmuxFacts& tmux() const { return m_tmux; }
    /// Roots the last full pass could not walk.
    const std::vector<std::string>& frozen_roots() const { return m_frozen_roots; }
    std::size_t size() const { return m_locks.size() - m_gone; }

private:
    // A sorted vector, not a map: at 100,000 locks a map's nodes cost twice the entries. A
    // forgotten worker stays as a tombstone (gone) until the next pass or until a quarter of
    // the entries are tombstones, so that a burst of removals does not shift the vector each.
    struct Entry {
        LockSummary lock; ///< its worker is pooled: shared with the watchers and the next pass
        bool gone = false;
    };
    using Entries = std::vector<Entry>;

    void store(const LockRecord& record, TmuxState tmux_state);
    void forget(std::string_view worker);
    Entries::iterator slot(std::string_view worker);
    Entries::const_iterator slot(std::string_view worker) const;

    Entries m_locks; // sorted by worker
    std::size_t m_gone = 0;
    std::map<std::string, TmuxHold, std::less<>> m_holds; // only the locks waiting on tmux
    TmuxFacts m_tmux;
    std::vector<std::string> m_frozen_roots;
};

} // namespace agentlock
