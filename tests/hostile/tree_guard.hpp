#pragma once
// Helpers for hostile-tree and fault tests: snapshots of files that must not change (SHA-256 of
// contents, type, mode, owner), very deep directory chains, mounts that are undone on scope
// exit, and the daemon run as another user.

// The snapshots' SHA-256 is the library's; its sha256_hex is what the tests compare with.
#include <agentlock/sha256.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace agentlock::hostile {

/// SHA-256 of a file's contents, read through an fd opened with O_NOFOLLOW|O_NONBLOCK; nullopt
/// when it cannot be read.
std::optional<std::string> sha256_file(const std::string& path);

/// What a snapshot records of one path: type, permission bits, owner, and for a regular file its
/// size, mtime and SHA-256, for a symlink its target. Link counts and ctimes are left out (an
/// unlink of another hard link changes them without touching the file).
struct Snapshot {
    std::map<std::string, std::string> entries; ///< path -> description
    /// Human-readable differences from `before` ("changed: ...", "gone: ...", "new: ...").
    std::vector<std::string> differences_from(const Snapshot& before) const;
};

/// Records `path` and, when it is a directory (not a symlink), everything below it, without
/// following symlinks. Paths in `exclude` (exact) are skipped.
void add_to_snapshot(Snapshot& snap, const std::string& path,
                     const std::vector<std::string>& exclude = {});

/// Records only `path` itself (a directory's own entry, not its contents).
void add_entry_to_snapshot(Snapshot& snap, const std::string& path);

/// Records the regular files directly inside `dir` (not recursive), skipping names in
/// `exclude_names`.
void add_dir_files_to_snapshot(Snapshot& snap, const std::string& dir,
                               const std::vector<std::string>& exclude_names = {});

/// Creates `depth` nested directories named `name` under `parent` (through directory fds, so the
/// path length does not matter); with `side_branch`, also an empty directory "side" at every
/// level. Returns the deepest directory's path.
std::string make_deep_chain(const std::string& parent, const std::string& name, unsigned depth,
                            bool side_branch);

/// Writes `content` as `<dir fd chain>/rel/.../file`: `parent` may be too long for a path, so
/// the chain of `name` directories is descended through fds. Creates `.runtime/agent.lock` in
/// the worker directory `worker_name` made inside the deepest directory.
void put_lock_at_depth(const std::string& parent, const std::string& name, unsigned depth,
                       const std::string& worker_name, const std::string& content);

/// Reads `.runtime/agent.lock` of `worker_name` inside the deepest directory of the chain;
/// nullopt when it does not exist.
std::optional<std::string> read_lock_at_depth(const std::string& parent, const std::string& name,
                                              unsigned depth, const std::string& worker_name);

/// Removes a chain made by make_deep_chain without recursion or one fd per level.
void remove_deep_chain(const std::string& parent, const std::string& name);

/// A mount that is unmounted (lazily) on destruction.
class MountGuard {
public:
    /// mount(2); `ok()` is false and `error()` says why when it fails (EPERM in a container).
    MountGuard(const std::string& source, const std::string& target, const std::string& fstype,
               unsigned long flags, const std::string& data);
    ~MountGuard();
    MountGuard(const MountGuard&) = delete;
    MountGuard& operator=(const MountGuard&) = delete;
    bool ok() const { return m_ok; }
    const std::string& error() const { return m_error; }
    /// Unmounts now (no-op when not mounted).
    void unmount();

private:
    std::string m_target;
    bool m_ok = false;
    std::string m_error;
};

/// The result of running the daemon as another user.
struct UserRun {
    bool exited = false;
    int code = -1;
    bool timed_out = false;
    std::string out;
    std::string err;
};

/// Runs `binary args...` as uid/gid `id` (no supplementary groups) with stdout and stderr in
/// files under `dir`; sends SIGTERM after `stop_after` when given, and SIGKILL after `timeout`.
/// Throws when fork fails; exit code 126 means the switch of user failed, 127 that exec failed.
UserRun run_as_user(uid_t id, const std::string& dir, const std::string& binary,
                    const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                    std::optional<std::chrono::milliseconds> stop_after = std::nullopt);

} // namespace agentlock::hostile
