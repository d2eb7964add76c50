#pragma once
// Finds every <dir>/.runtime/agent.lock under a root through directory fds.

#include <agentlock/result.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace agentlock {

/// .git, .hg, .svn, node_modules, .dolt-data, .dolt-backup
std::vector<std::string> default_prune_list();

/// The most threads default_walk_threads() picks.
inline constexpr unsigned k_default_walk_threads_max = 4;

/// A thread count for the parallel walk: the hardware's, between 1 and 4.
unsigned default_walk_threads();

struct WalkOptions {
    std::vector<std::string> prune = default_prune_list(); ///< directory names never entered
    std::optional<unsigned> max_depth; ///< root is depth 0; unset means unlimited
    bool one_file_system = true;       ///< do not cross into other mounts
    /// Walking threads. 1 walks on the caller's thread alone; more walks in parallel with the
    /// same results (see walk_locks); 0 means default_walk_threads().
    unsigned threads = 1;
    /// When set and true, the walk stops at the next directory it would read (every walker,
    /// in a parallel walk) and says so in WalkStats::cancelled.
    const std::atomic<bool>* cancel = nullptr;
};

/// A lock site as the walk finds it. `runtime_fd` is the open `.runtime` directory and is valid
/// only during the visitor call: read and remove through it, never through `lock_path`.
struct LockSite {
    std::string worker;    ///< the directory holding .runtime
    std::string lock_path; ///< for messages only
    int runtime_fd = -1;
};

struct WalkError {
    std::string path;
    std::string message; ///< "<operation> <path>: <strerror>"
};

struct WalkStats {
    std::uint64_t dirs = 0;            ///< directories read
    std::uint64_t unreadable_dirs = 0; ///< directories that could not be opened or read
    std::vector<WalkError> errors;     ///< one per unreadable directory, capped
    /// `.runtime` entries that are symlinks where a worker's `.runtime` would be read: never
    /// followed, so a lock behind one is never seen.
    std::uint64_t symlinked_runtimes = 0;
    /// One per symlinked `.runtime`, capped like `errors`; `message` names the link's target.
    std::vector<WalkError> skipped;
    /// The walk stopped early at WalkOptions::cancel: the counts and sites are partial.
    bool cancelled = false;
};

using LockVisitor = std::function<void(const LockSite&)>;

/// Walks `root` without following symlinks, calling `visit` for every `.runtime` directory that
/// holds an entry named agent.lock (of any type). A `.runtime` that is a symlink, where a
/// worker's would be read, is counted and listed in `skipped` instead. Fails only when the root
/// itself cannot be opened as a directory. With `options.threads` > 1 the same directories are
/// read, the same sites visited and the same counts returned, in another order: `visit` is then
/// called from several threads but never twice at once, possibly with a dup of the `.runtime` fd,
/// and an exception from it stops the walk and is rethrown here. `errors` may then name another
/// subset when more than 100 directories are unreadable.
Result<WalkStats> walk_locks(const std::string& root, const WalkOptions& options,
                             const LockVisitor& visit);

} // namespace agentlock
