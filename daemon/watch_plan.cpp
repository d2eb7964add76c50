#include "watch_plan.hpp"

#include <agentlock/fd.hpp>
#include <agentlock/findings.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/scope.hpp>

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock::daemon {

namespace {

const std::string k_runtime(k_runtime_dir);

std::string base_name(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

std::map<std::string, WatchKind> watches_to(const std::string& root, const std::string& worker) {
    std::map<std::string, WatchKind> out;
    if (!path_is_under(worker, root)) {
        return out;
    }
    for (std::string dir = worker; dir.size() > root.size() && path_is_under(dir, root);
         dir = parent_path(dir)) {
        out.emplace(dir, WatchKind::dir);
    }
    out[join_path(worker, k_runtime)] = WatchKind::runtime;
    return out;
}

std::vector<std::string> list_subdirs(const std::string& path, const WalkOptions& scope) {
    std::vector<std::string> out;
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return out; // gone or unreadable: the next pass reports unreadable directories
    }
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
        ::close(fd);
        return out;
    }
    while (const dirent* entry = ::readdir(dir)) {
        const std::string name(entry->d_name);
        if (name == "." || name == ".." || is_pruned(scope, name)) {
            continue;
        }
        bool is_dir = entry->d_type == DT_DIR;
        if (entry->d_type == DT_UNKNOWN) {
            struct stat st {};
            is_dir = ::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                     S_ISDIR(st.st_mode);
        }
        if (is_dir) {
            out.push_back(name);
        }
    }
    ::closedir(dir);
    std::sort(out.begin(), out.end());
    return out;
}

unsigned watch_depth_for(unsigned deepest_worker, const WalkOptions& walk) {
    unsigned depth = std::clamp(deepest_worker, k_min_watch_depth, k_max_watch_depth);
    if (walk.max_depth) {
        depth = std::min(depth, *walk.max_depth);
    }
    return depth;
}

namespace {

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Adds watches, each directory before it is listed, and remembers what it watched.
class TreeWatcher {
public:
    TreeWatcher(const WalkOptions& walk, unsigned watch_depth, DirWatcher& watcher)
        : m_walk(walk), m_watch_depth(watch_depth), m_watcher(watcher) {}

    // Watches `dir` (at `depth` below its root) and, unless it is a worker (other than a root),
    // what lies below it down to the watch depth.
    void tree(const std::string& dir, unsigned depth, bool is_root) {
        if (!add(dir, WatchKind::dir)) {
            return;
        }
        const auto names = list_subdirs(dir, m_walk);
        const bool worker = std::find(names.begin(), names.end(), k_runtime) != names.end();
        if (worker) {
            add(join_path(dir, k_runtime), WatchKind::runtime);
            if (!is_root) {
                return; // the rest of a worker is its checkout: not ours to watch
            }
        }
        const unsigned next = depth + 1;
        if (next > m_watch_depth || (m_walk.max_depth && next > *m_walk.max_depth)) {
            return;
        }
        for (const auto& name : names) {
            if (name == k_runtime || m_result.worst == AddWatch::exhausted) {
                continue;
            }
            const std::string child = join_path(dir, name);
            if (next < m_watch_depth) {
                tree(child, next, false);
            } else {
                leaf(child);
            }
        }
    }

    // The deepest level: a stat, not a listing, tells a worker. A worker's .runtime is watched
    // instead of the worker itself (one watch per worker, not two); a directory without one is
    // watched for its .runtime to appear, and looked at again after the watch is in place.
    void leaf(const std::string& dir) {
        const std::string runtime = join_path(dir, k_runtime);
        if (!is_directory(runtime) && !(add(dir, WatchKind::dir) && is_directory(runtime))) {
            return; // no .runtime yet: the watch on dir will tell when it appears
        }
        add(runtime, WatchKind::runtime);
    }

    // The way down to a worker whose lock was found: the directories from its root down to its
    // parent, top down, then the worker as leaf() watches it.
    void way(const std::string& root, std::string_view worker_path) {
        const std::string worker(worker_path);
        std::vector<std::string> dirs;
        for (std::string dir = parent_path(worker);
             dir.size() > root.size() && path_is_under(dir, root); dir = parent_path(dir)) {
            dirs.push_back(dir);
        }
        for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
            if (!add(*it, WatchKind::dir)) {
                return;
            }
        }
        if (worker != root) {
            leaf(worker);
        }
    }

    // False when nothing should be listed under `path` (gone, or the watch limit is reached).
    bool add(const std::string& path, WatchKind kind) {
        if (m_result.worst == AddWatch::exhausted) {
            return false;
        }
        const Result<AddWatch> added = m_watcher.add(path, kind);
        const AddWatch r = outcome_of(added);
        if (r == AddWatch::added || r == AddWatch::present) {
            return true;
        }
        if (r == AddWatch::gone) {
            return false;
        }
        if (m_result.error.empty() || r == AddWatch::exhausted) {
            m_result.error = added.error().message;
        }
        if (r == AddWatch::exhausted || m_result.worst == AddWatch::added) {
            m_result.worst = r;
        }
        return r == AddWatch::failed; // still worth listing: it may lead to a lock
    }

    FleetWatch& result() { return m_result; }

private:
    const WalkOptions& m_walk;
    unsigned m_watch_depth;
    DirWatcher& m_watcher;
    FleetWatch m_result;
};

} // namespace

FleetWatch watch_fleet(const std::vector<std::string>& roots,
                       const std::vector<std::string_view>& workers, const WalkOptions& walk,
                       unsigned watch_depth, DirWatcher& watcher) {
    TreeWatcher w(walk, watch_depth, watcher);
    for (const auto& root : roots) {
        w.tree(root, 0, true);
    }
    for (const auto& worker : workers) {
        if (const std::string* root = root_containing(roots, worker)) {
            w.way(*root, worker);
        }
    }
    return std::move(w.result());
}

FleetWatch watch_way(const std::string& root, const std::string& worker, DirWatcher& watcher) {
    const WalkOptions walk;
    TreeWatcher w(walk, 0, watcher);
    w.way(root, worker);
    return std::move(w.result());
}

ScanResult scan_new_directory(const std::string& root, const std::string& path,
                              const WalkOptions& walk, unsigned watch_depth, DirWatcher& watcher) {
    ScanResult result;
    const auto depth = depth_below(root, path);
    if (!depth || *depth == 0) {
        return result;
    }
    TreeWatcher w(walk, watch_depth, watcher);
    if (base_name(path) == k_runtime) {
        w.add(path, WatchKind::runtime);
        result.workers.push_back(parent_path(path));
    } else if (!walk.max_depth || *depth <= *walk.max_depth) {
        if (*depth <= watch_depth) {
            w.tree(path, *depth, false);
        }
        // Lock sites anywhere below, as a pass would find them there.
        WalkOptions sub = walk;
        if (walk.max_depth) {
            sub.max_depth = *walk.max_depth - *depth;
        }
        std::set<std::string> found;
        auto walked =
            walk_locks(path, sub, [&found](const LockSite& site) { found.insert(site.worker); });
        if (walked) {
            result.workers.assign(found.begin(), found.end());
        } // else it vanished or cannot be read: nothing to judge there now
    }
    result.watch = w.result().worst;
    result.error = w.result().error;
    return result;
}

} // namespace agentlock::daemon
