#pragma once
// What a pass may enter, in one place: the configured roots, and within each the prune names,
// the depth limit and the mount boundary, and what counts as a worker. The tree walk, the
// single-worker check (check_worker) and the daemon's inotify watch plan all ask here, so that
// an event never looks where a full pass would not, nor misses where it would.

#include <agentlock/tree_walk.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

/// True when `path` is `root` itself or lies below it ("/a/b" is under "/a" and "/a/", not "/ab").
bool path_is_under(std::string_view path, std::string_view root);

/// The most specific configured root that `path` lies under, or nullptr.
const std::string* root_containing(const std::vector<std::string>& roots, std::string_view path);

/// The depth of `path` below `root` (the root is 0), or nullopt when it is not under it.
std::optional<unsigned> depth_below(std::string_view root, std::string_view path);

/// The names leading from `root` down to `path`; nullopt when one is empty, "." or "..".
std::optional<std::vector<std::string>> names_below(std::string_view root, std::string_view path);

/// A directory named `name` is never entered.
bool is_pruned(const WalkOptions& scope, std::string_view name);

/// Whether a directory named `name`, whose parent lies `parent_depth` below its root, is read:
/// directories at depth <= max_depth are, and so is a `.runtime` one level deeper, so that a
/// worker at depth max_depth is found (nothing below that `.runtime` is entered).
bool may_enter(const WalkOptions& scope, unsigned parent_depth, std::string_view name);

/// The mount a directory belongs to (statx STATX_MNT_ID, Linux 5.8); 0 when the kernel does not
/// say, and st_dev then decides alone. st_dev alone misses a bind mount of the same file system.
std::uint64_t mount_id_of(int dir_fd);

/// The identity of the file system place a root lies on, to compare the directories below it
/// with: with one_file_system, a directory with another device or another (known) mount id is
/// outside the root's scope.
struct MountPlace {
    std::uint64_t dev = 0;
    std::uint64_t mount = 0; ///< 0 when unknown

    /// Whether a directory at (dev, mount) below a place like this one lies on another mount.
    bool differs(std::uint64_t other_dev, std::uint64_t other_mount) const {
        return other_dev != dev || (mount != 0 && other_mount != 0 && other_mount != mount);
    }
};

} // namespace agentlock
