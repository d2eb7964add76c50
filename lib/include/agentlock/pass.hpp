#pragma once
// One pass of the cleaner: walk the roots, query tmux once, judge, remove stale, find collisions.

#include <agentlock/collisions.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/reaper.hpp>
#include <agentlock/tmux_probe.hpp>
#include <agentlock/tree_walk.hpp>
#include <agentlock/verdict.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

struct PassOptions {
    std::vector<std::string> roots;
    WalkOptions walk;
    bool dry_run = false;
    /// When set and true, the pass stops early: no removal starts after it is seen.
    const std::atomic<bool>* cancel = nullptr;
};

enum class LockAction { kept, removed, would_remove, skipped_changed };
std::string_view to_string(LockAction action); ///< "kept", "removed", "would-remove", ...

/// One lock as the pass saw and handled it.
struct LockRecord {
    std::string worker;
    std::string lock_path;
    std::optional<LockInfo> info; ///< unset for invalid locks
    std::string content;          ///< the raw bytes judged (the full removed content on removal)
    Judgement judgement;
    LockAction action = LockAction::kept;
    ProcessFacts process; ///< evidence: what the process probe saw
    std::string detail;   ///< reaper's detail when skipped or failed
};

struct RootReport {
    std::string path;
    bool ok = true;
    std::string error; ///< why the root could not be walked
};

struct PassStats {
    std::uint64_t dirs = 0;
    std::uint64_t locks = 0;
    std::uint64_t removed = 0;
    std::uint64_t unreadable_dirs = 0;
    std::uint64_t elapsed_ms = 0;
};

struct PassReport {
    std::vector<RootReport> roots;
    TmuxFacts tmux;
    std::deque<LockRecord> locks; ///< sorted by lock_path
    std::vector<Collision> collisions;
    std::vector<WalkError> walk_errors;
    PassStats stats;
};

/// Runs one full pass. Never throws for a bad root or lock: everything lands in the report.
PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                    const HostFacts& host);

/// The outcome of re-checking one worker's lock outside a full pass (see check_worker).
struct WorkerCheck {
    enum class State {
        found,       ///< the worker has a lock entry: `record` says how it was judged and handled
        absent,      ///< no lock there, or a symlink or non-directory on the way: nothing to judge
        outside,     ///< a place no full pass looks: under no root, pruned, too deep, other mount
        unreachable, ///< a directory on the way could not be opened or read; `error` says why
    };
    State state = State::absent;
    std::string worker;
    std::string lock_path;
    std::string root;              ///< the configured root the worker lies under
    LockRecord record;             ///< set when state is found
    std::optional<TmuxFacts> tmux; ///< the tmux answer the judgement used, when tmux was asked
    std::string error;             ///< why it is outside or unreachable
};

std::string_view to_string(WorkerCheck::State state); ///< "found", "absent", ...

/// Judges one worker's lock and removes it when stale, with the same rule, reaper and evidence
/// as run_pass, for event-driven re-checks. <worker>/.runtime is reached from the configured
/// root that contains `worker`, one component at a time with openat(O_NOFOLLOW|O_DIRECTORY), so
/// no symlink is followed, and only where a full pass would look (prune list, max_depth,
/// one_file_system). tmux is asked only when the lock records a session, unless `fresh_tmux`
/// (an answer just obtained) is given. Never throws for a bad path or lock.
WorkerCheck check_worker(const std::string& worker, const PassOptions& options,
                         ProcessProbe& processes, TmuxProbe& tmux, const HostFacts& host,
                         const TmuxFacts* fresh_tmux = nullptr);

/// The report as the JSON document `agentlockd --once --json` prints.
std::string report_to_json(const PassReport& report);

} // namespace agentlock
