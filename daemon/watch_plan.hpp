#pragma once
// Which directories to watch with inotify, and the search of a directory that appeared. Runs on
// the worker thread (it lists directories), never on the event loop.
//
// Watching every directory of a large tree is expensive (one kernel watch each), so only these
// are watched: the roots; below them, directories down to the watch depth (the deepest known
// worker, between k_min_watch_depth and k_max_watch_depth), never entering a worker (a directory
// holding a .runtime: its contents are a checkout) but watching its .runtime; the way down to
// every known worker, however deep; and new directories as they appear, by the same rule. Every
// directory is watched before it is listed, so nothing created meanwhile is missed. Blind spot:
// a lock created deeper than the watch depth in a directory that existed before (or inside
// another worker) is found by the next full pass.

#include "dir_watch.hpp"

#include <agentlock/scope.hpp>
#include <agentlock/tree_walk.hpp>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace agentlock::daemon {

/// Directories are watched at least this deep below a root (root/rig/polecats/w01 is 3)...
inline constexpr unsigned k_min_watch_depth = 3;
/// ... and at most this deep, however deep a known worker lies (its own way is watched).
inline constexpr unsigned k_max_watch_depth = 6;

/// The watch depth for the deepest known worker (0 when none), within max_depth.
unsigned watch_depth_for(unsigned deepest_worker, const WalkOptions& walk);

/// How watch_fleet went.
struct FleetWatch {
    AddWatch worst = AddWatch::added; ///< exhausted when the watch limit stopped it
    std::string error;
};

/// Watches the fleet (after a full pass): each root, the directories below it down to
/// `watch_depth` outside workers, each worker's .runtime met on the way (at the deepest level
/// the .runtime instead of the worker), and the way down to each of `workers` (those under no
/// root are ignored). To unwatch the rest, call DirWatcher::begin_marking before and
/// DirWatcher::drop_unmarked after.
FleetWatch watch_fleet(const std::vector<std::string>& roots,
                       const std::vector<std::string_view>& workers, const WalkOptions& walk,
                       unsigned watch_depth, DirWatcher& watcher);

/// Watches the way down to `worker`, whose lock was just found: the directories from `root`
/// (exclusive) to its parent, then its .runtime (or the worker itself while it has none).
FleetWatch watch_way(const std::string& root, const std::string& worker, DirWatcher& watcher);

/// The directories from `root` (exclusive) down to `worker`, and `worker`/.runtime.
std::map<std::string, WatchKind> watches_to(const std::string& root, const std::string& worker);

/// Names of the subdirectories of `path`, pruned names left out; `path` itself is opened with
/// O_NOFOLLOW and symlinks are never listed as directories. Empty when it cannot be read.
std::vector<std::string> list_subdirs(const std::string& path, const WalkOptions& scope);

/// What the search of a new directory found.
struct ScanResult {
    std::vector<std::string> workers; ///< workers with a lock site (to judge with check_worker)
    AddWatch watch = AddWatch::added; ///< exhausted when the inotify watch limit was hit
    std::string error;                ///< why a watch could not be added
};

/// Searches `path`, a directory that appeared under `root`: watches it, and below it as
/// watch_fleet would, down to `watch_depth` below the root; then walks it for lock sites with
/// the pass's prune list and max_depth (counted from the root). A `path` named .runtime is
/// watched as such and its worker returned.
ScanResult scan_new_directory(const std::string& root, const std::string& path,
                              const WalkOptions& walk, unsigned watch_depth, DirWatcher& watcher);

} // namespace agentlock::daemon
