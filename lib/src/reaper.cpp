#include <agentlock/reaper.hpp>

#include <agentlock/fd.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

// The reaper never resolves a path: everything goes through the `.runtime` directory fd the walk
// opened, so a `.runtime` swapped for a symlink cannot send the unlink outside the tree (which
// matters when the cleaner runs as root). It never creates anything in a worker tree, not even
// the sidecar, because the cleaner may run as another user and a sidecar it created could lock
// the agents out. It removes only what it can show is unchanged and still stale, since a lock
// re-acquired between the judgement and the removal must survive:
//
//   1. flock the sidecar non-blocking, if the sidecar exists, and hold it to the end: an
//      acquirer that follows the protocol (Go or C++) is either done or waits for us;
//   2. stat, re-read and compare the bytes with the ones judged;
//   3. re-judge what was read;
//   4. stat again and require the same file (device, inode, size, mtime, ctime): this closes
//      the window of the re-judge (which may query tmux) to writers that skip the flock;
//   5. unlinkat.
//
// Remaining race, as the header says: a writer that takes no flock can still replace or rewrite
// the file between step 4 and the unlinkat.

namespace agentlock {

namespace {

RemovalResult outcome(RemovalAction action, std::string detail, std::string content = {}) {
    RemovalResult r;
    r.action = action;
    r.detail = std::move(detail);
    r.content = std::move(content);
    return r;
}

bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
           a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

const std::string k_changed = "lock changed since it was judged";
const std::string k_gone = "lock is gone";

} // namespace

std::string_view to_string(RemovalAction action) {
    switch (action) {
    case RemovalAction::removed:
        return "removed";
    case RemovalAction::would_remove:
        return "would-remove";
    case RemovalAction::skipped_changed:
        return "skipped-changed";
    case RemovalAction::failed:
        return "failed";
    }
    return "failed";
}

RemovalResult remove_if_unchanged(int runtime_fd, const std::string& lock_path,
                                  std::string_view judged_bytes, const Rejudge& rejudge,
                                  bool dry_run, bool (*removable)(Verdict)) {
    const std::string lock_name(k_lock_name);
    const std::string sidecar_name(k_flock_name);
    const std::string sidecar_path = lock_path + ".flock";

    // 1. The sidecar flock, never O_CREAT. Held until `sidecar` closes on return.
    Fd sidecar(
        ::openat(runtime_fd, sidecar_name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!sidecar) {
        const int err = errno;
        if (err != ENOENT) {
            // ELOOP (a symlinked sidecar), EACCES and the like: we cannot take part in the
            // protocol, so we cannot know the lock is not being acquired. Keep it.
            return outcome(RemovalAction::failed, io_error("open", sidecar_path, err).message);
        }
    } else if (::flock(sidecar.get(), LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (err == EWOULDBLOCK) {
            return outcome(RemovalAction::skipped_changed,
                           "lock is being acquired (flock held on " + sidecar_path + ")");
        }
        return outcome(RemovalAction::failed, io_error("flock", sidecar_path, err).message);
    }

    // 2. Stat, re-read, compare.
    struct stat before {};
    if (::fstatat(runtime_fd, lock_name.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0) {
        const int err = errno;
        if (err == ENOENT) {
            return outcome(RemovalAction::skipped_changed, k_gone);
        }
        return outcome(RemovalAction::failed, io_error("stat", lock_path, err).message);
    }
    LockRead read = read_lock_at(runtime_fd, lock_path);
    switch (read.state) {
    case LockRead::State::absent:
        return outcome(RemovalAction::skipped_changed, k_gone);
    case LockRead::State::invalid:
        return outcome(RemovalAction::skipped_changed, "lock changed: " + read.message,
                       std::move(read.bytes));
    case LockRead::State::io_error:
        return outcome(RemovalAction::failed, read.message, std::move(read.bytes));
    case LockRead::State::ok:
        break;
    }
    if (read.bytes != judged_bytes || !read.info) {
        return outcome(RemovalAction::skipped_changed, k_changed, std::move(read.bytes));
    }

    // 3. Re-judge what is on disk now.
    const Judgement again = rejudge(*read.info);
    if (!removable(again.verdict)) {
        return outcome(RemovalAction::skipped_changed,
                       "no longer stale (" + std::string(to_string(again.verdict)) +
                           "): " + again.reason,
                       std::move(read.bytes));
    }

    // 4. Still the file that was read?
    struct stat after {};
    if (::fstatat(runtime_fd, lock_name.c_str(), &after, AT_SYMLINK_NOFOLLOW) != 0) {
        const int err = errno;
        if (err == ENOENT) {
            return outcome(RemovalAction::skipped_changed, k_gone, std::move(read.bytes));
        }
        return outcome(RemovalAction::failed, io_error("stat", lock_path, err).message,
                       std::move(read.bytes));
    }
    if (!same_file(before, after)) {
        return outcome(RemovalAction::skipped_changed, k_changed, std::move(read.bytes));
    }

    if (dry_run) {
        return outcome(RemovalAction::would_remove, again.reason, std::move(read.bytes));
    }

    // 5. Unlink through the directory fd; the sidecar stays (removing it would break the
    // protocol for anyone holding or about to take it).
    if (::unlinkat(runtime_fd, lock_name.c_str(), 0) != 0) {
        const int err = errno;
        if (err == ENOENT) {
            return outcome(RemovalAction::skipped_changed, k_gone, std::move(read.bytes));
        }
        return outcome(RemovalAction::failed, io_error("unlink", lock_path, err).message,
                       std::move(read.bytes));
    }
    return outcome(RemovalAction::removed, again.reason, std::move(read.bytes));
}

} // namespace agentlock
