#pragma once
// The agent-side API: one Lock per worker directory, as in the Go seed.

#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/result.hpp>
#include <agentlock/tmux_probe.hpp>
#include <agentlock/verdict.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace agentlock {

struct LockOptions {
    TmuxServer tmux; ///< which tmux server decides whether a recorded session lives
    /// The process the lock names and that "ours" means: 0 is the calling process. A launcher
    /// that runs the agent as its child names the child, so the lock lives as long as the agent
    /// does, even when the launcher is killed.
    std::int64_t owner_pid = 0;
    /// The $TMUX to record the agent's tmux server from; unset: this process's environment.
    std::optional<std::string> tmux_env;
    /// Optional seams for tests; the real probes are used when null. Not owned.
    ProcessProbe* process_probe = nullptr;
    TmuxProbe* tmux_probe = nullptr;
};

/// What force_release_judged found and removed.
struct ForcedRelease {
    bool removed = false;         ///< false when there was no lock
    std::string content;          ///< the removed file's bytes
    std::optional<LockInfo> info; ///< unset when the lock did not parse
    Judgement judgement;          ///< the verdict it had when removed (invalid when unparseable)
};

/// An agent identity lock for one worker directory.
class Lock {
public:
    explicit Lock(std::string worker_dir, LockOptions options = {});
    ~Lock();
    Lock(Lock&&) noexcept;
    Lock& operator=(Lock&&) noexcept;

    /// Claims the worker for the owner (this process unless LockOptions::owner_pid) under the
    /// sidecar flock; an owner that is not running is an `invalid` Error. Refreshes a lock that is
    /// ours (our PID) or that records the same session; takes over a stale lock; otherwise fails
    /// with ErrorKind::locked "worker is locked by another agent: PID n (session: s, acquired: t)".
    Status acquire(std::string_view session_id);

    /// Removes the lock if this process holds it; a missing lock is fine. Fails with
    /// ErrorKind::locked when another agent holds it (use force_release for that).
    Status release();

    /// Reads the lock: ErrorKind::not_locked when absent, invalid_lock when unparseable.
    Result<LockInfo> read() const;

    /// Ok when unlocked, ours or stale (a stale lock is removed safely as a side effect);
    /// ErrorKind::locked otherwise, including when liveness cannot be established.
    Status check();

    /// "unlocked", "locked (by us)", "stale (dead PID n)", "locked by PID n (session: s)", or
    /// "error: ...".
    std::string status();

    /// Removes the lock whoever holds it (for operators' repair tools).
    Status force_release();

    /// Like force_release, but reads and judges the lock under the sidecar flock first and says
    /// what it removed. A lock that may belong to a running agent (live, orphaned,
    /// held-by-session, unknown) is kept, with ErrorKind::locked, unless `even_if_live`; stale,
    /// foreign and invalid locks are removed.
    Result<ForcedRelease> force_release_judged(bool even_if_live);

    /// The pid the lock is written for and that "ours" means.
    std::int64_t owner_pid() const;

    const std::string& worker_dir() const { return m_worker_dir; }
    const std::string& lock_path() const { return m_lock_path; }

private:
    struct Probes;
    Probes& probes();
    const HostFacts& host();
    bool is_ours(const LockInfo& info);
    /// The one staleness rule, applied with this lock's probes.
    Judgement judge(const LockInfo& info);
    Status write_ours(int runtime_fd, std::string_view session_id);

    std::string m_worker_dir;
    std::string m_lock_path;
    LockOptions m_options;
    std::unique_ptr<Probes> m_probes;
};

} // namespace agentlock
