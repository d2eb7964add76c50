#include <agentlock/tree_walk.hpp>

#include "walk_internal.hpp"

#include <agentlock/fd.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/scope.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <sys/types.h>
#include <thread>
#include <unistd.h>

// How the walk works: it must never follow a symlink out of the tree (a removal through one
// would land outside it), and it must stay fast on huge trees (no stat per file, no descent into
// .git or node_modules) while counting, not swallowing, the directories it cannot read.
//
// Depth-first with an explicit stack of frames, one per directory on the current path from the
// root, so nesting depth costs heap, not call stack. A frame holds the directory's display path,
// its (st_dev, st_ino), the names of its subdirectories still to visit, and, while it is among
// the deepest k_held_fds frames (or is the root), its open fd. Leaf directories never stay on
// the stack. When a frame whose fd was closed has to be descended from again, it is re-opened
// from the deepest ancestor still held, one openat(O_NOFOLLOW|O_DIRECTORY) per name, and each
// re-opened directory must have the (st_dev, st_ino) it had the first time; otherwise that
// subtree is reported and skipped. So at most k_held_fds + 2 directory fds are open at once
// at any depth, and nothing below the root is ever reached through a symlink or a path string.
// The price is paid only past k_held_fds levels: a directory with pending subdirectories that
// lost its fd costs one openat per level from the nearest held ancestor (quadratic in the depth
// in the worst case, e.g. a 10,000-level chain with a side branch at every level).
//
// Every directory below the root is opened with openat(parent_fd, name,
// O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK) and read with getdents64 into one 32 KiB
// buffer. d_type decides what is a directory; fstatat(AT_SYMLINK_NOFOLLOW) is called only for
// DT_UNKNOWN entries, and never for regular files. Symlinks are never entered.
//
// Depth: the root is depth 0 and the entries of a directory at depth d are at depth d + 1.
// With max_depth set, directories at depth <= max_depth are read, and so is a `.runtime`
// directory at depth max_depth + 1 (but nothing below it): a worker at depth <= max_depth is
// found, a deeper one is not.
//
// Lock sites: a directory entered under the name `.runtime` that lists an entry named
// `agent.lock` (of any type) is a lock site; the visitor is called right after the directory is
// read, with its fd open. The root itself is never a lock site (its worker would lie outside
// the root). `.runtime` directories are otherwise walked like any other directory. A `.runtime`
// entry that is a symlink, below the root and where a `.runtime` directory would be read
// (depth, prune), is not entered either, but reported in WalkStats::skipped with its target: a
// lock behind it would never be judged, and the operator should know.
//
// The parallel walk (parallel_walk.cpp, WalkOptions::threads > 1) runs this same walker on
// several threads. A walker that sees another one waiting gives away half of the pending
// subdirectories of its shallowest frame that holds an fd, with a dup of that fd; the taker
// makes it the bottom frame of its own stack. Every directory is still read exactly once, by
// one walker, through the same code, so the results are those of the serial walk.

namespace agentlock {

namespace {

constexpr std::size_t k_dirent_buffer = 32 * 1024;
constexpr int k_dir_flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

std::string join(const std::string& parent, std::string_view name) {
    std::string out = parent;
    if (out.empty() || out.back() != '/') {
        out += '/';
    }
    out += name;
    return out;
}

} // namespace

namespace walk_detail {

Walker::Walker(const WalkOptions& options, const LockVisitor& visit, std::size_t held_fds,
               WorkSink* sink)
    : m_options(options), m_visit(visit), m_held_max(held_fds), m_sink(sink),
      m_buffer(new char[k_dirent_buffer]) {}

Status Walker::start(const std::string& root) {
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) {
        return io_error("open", root, errno);
    }
    struct stat st {};
    if (::fstat(root_fd.get(), &st) != 0) {
        return io_error("stat", root, errno);
    }
    m_root_dev = st.st_dev;

    Frame top;
    top.name = root;
    top.path = root;
    top.dev = st.st_dev;
    top.ino = st.st_ino;
    top.mount = m_options.one_file_system ? mount_id_of(root_fd.get()) : 0;
    top.fd = std::move(root_fd);
    m_stack.push_back(std::move(top));
    read_top();
    return {};
}

void Walker::adopt(Frame frame, dev_t root_dev) {
    m_root_dev = root_dev;
    m_held = 0;
    m_stack.clear();
    m_stack.push_back(std::move(frame));
}

void Walker::walk() {
    while (!m_stack.empty()) {
        const bool cancelled =
            m_options.cancel != nullptr && m_options.cancel->load(std::memory_order_relaxed);
        if (cancelled || (m_sink != nullptr && m_sink->stopped())) {
            m_stats.cancelled = m_stats.cancelled || cancelled;
            m_stack.clear();
            m_held = 0;
            return;
        }
        if (m_sink != nullptr && m_sink->wants_work()) {
            share();
        }
        Frame& parent = m_stack.back();
        if (parent.subdirs.empty()) {
            pop();
            continue;
        }
        std::string name = std::move(parent.subdirs.back());
        parent.subdirs.pop_back();
        if (!ensure_open(m_stack.size() - 1)) {
            continue;
        }
        enter(name);
    }
}

// Opens `name` under the top frame, pushes it, reads it and reports a lock site.
void Walker::enter(const std::string& name) {
    const Frame& parent = m_stack.back();
    std::string path = join(parent.path, name);
    Fd fd(::openat(parent.fd.get(), name.c_str(), k_dir_flags));
    if (!fd) {
        const int err = errno;
        // ENOENT: removed since it was listed. ELOOP/ENOTDIR: it is (or just became) a
        // symlink or a non-directory. Neither is an unreadable directory.
        if (err != ENOENT && err != ELOOP && err != ENOTDIR) {
            unreadable(io_error("open", path, err).message, path);
        }
        return;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        unreadable(io_error("stat", path, errno).message, path);
        return;
    }
    // Another mount (another file system, or a bind mount of the same one): not entered, and
    // not an error. Every frame on the stack is on the root's mount.
    const std::uint64_t mount = m_options.one_file_system ? mount_id_of(fd.get()) : 0;
    if (m_options.one_file_system &&
        MountPlace{m_root_dev, parent.mount}.differs(st.st_dev, mount)) {
        return;
    }
    Frame child;
    child.name = name;
    child.path = std::move(path);
    child.depth = parent.depth + 1;
    child.dev = st.st_dev;
    child.ino = st.st_ino;
    child.mount = mount;
    child.fd = std::move(fd);
    child.is_runtime = name == k_runtime_dir;
    m_stack.push_back(std::move(child));
    ++m_held;
    trim();
    if (!read_top()) {
        pop();
    }
}

// Reads the top frame's entries; calls the visitor for a lock site. Returns false when the
// frame has nothing left to descend into.
bool Walker::read_top() {
    Frame& frame = m_stack.back();
    bool has_lock = false;
    bool read_ok = true;
    for (;;) {
        const ssize_t n = ::getdents64(frame.fd.get(), m_buffer.get(), k_dirent_buffer);
        if (n < 0) {
            unreadable(io_error("read", frame.path, errno).message, frame.path);
            read_ok = false;
            break;
        }
        if (n == 0) {
            break;
        }
        for (std::size_t off = 0; off < static_cast<std::size_t>(n);) {
            const auto* entry = reinterpret_cast<const struct dirent64*>(m_buffer.get() + off);
            off += entry->d_reclen;
            const std::string_view name(entry->d_name);
            if (name == "." || name == "..") {
                continue;
            }
            if (frame.is_runtime && name == k_lock_name) {
                has_lock = true;
            }
            if (is_candidate_dir(frame, name, entry->d_type) && may_enter(frame, name)) {
                frame.subdirs.emplace_back(name);
            } else if (name == k_runtime_dir && m_stack.size() >= 2 &&
                       is_symlink(frame, entry->d_type) && may_enter(frame, name)) {
                symlinked_runtime(frame);
            }
        }
    }
    if (read_ok) {
        ++m_stats.dirs;
    }
    if (has_lock) {
        LockSite site;
        site.worker = m_stack.size() >= 2 ? m_stack[m_stack.size() - 2].path : frame.path;
        site.lock_path = join(frame.path, k_lock_name);
        site.runtime_fd = frame.fd.get();
        m_visit(site);
    }
    // Visit in the order the names were listed (they are taken from the back).
    std::reverse(frame.subdirs.begin(), frame.subdirs.end());
    return !frame.subdirs.empty();
}

bool Walker::is_candidate_dir(const Frame& frame, std::string_view name, unsigned char type) const {
    if (type == DT_DIR) {
        return true;
    }
    if (type != DT_UNKNOWN) {
        return false; // DT_LNK included: symlinks are never entered
    }
    const std::string name_z(name);
    struct stat st {};
    if (::fstatat(frame.fd.get(), name_z.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        // Unknown type and cannot tell: let openat(O_DIRECTORY|O_NOFOLLOW) decide, and
        // report it there if it is an unreadable directory. A vanished entry is dropped.
        return errno != ENOENT;
    }
    return S_ISDIR(st.st_mode);
}

bool Walker::is_symlink(const Frame& frame, unsigned char type) const {
    if (type != DT_UNKNOWN) {
        return type == DT_LNK;
    }
    struct stat st {};
    return ::fstatat(frame.fd.get(), std::string(k_runtime_dir).c_str(), &st,
                     AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISLNK(st.st_mode);
}

bool Walker::may_enter(const Frame& frame, std::string_view name) const {
    return agentlock::may_enter(m_options, frame.depth, name);
}

// Makes sure frame `index` has an open fd, re-opening it from the deepest held ancestor
// without following symlinks. On failure the unreachable frames are emptied and false is
// returned.
bool Walker::ensure_open(std::size_t index) {
    if (m_stack[index].fd) {
        return true;
    }
    std::size_t held = index;
    while (!m_stack[held].fd) {
        --held; // the bottom frame (index 0) is always held
    }
    for (std::size_t i = held + 1; i <= index; ++i) {
        Frame& frame = m_stack[i];
        Fd fd(::openat(m_stack[i - 1].fd.get(), frame.name.c_str(), k_dir_flags));
        std::string failure;
        if (!fd) {
            const int err = errno;
            if (err != ENOENT && err != ELOOP && err != ENOTDIR) {
                failure = io_error("open", frame.path, err).message;
            }
        } else {
            struct stat st {};
            if (::fstat(fd.get(), &st) != 0) {
                failure = io_error("stat", frame.path, errno).message;
            } else if (st.st_dev != frame.dev || st.st_ino != frame.ino) {
                failure = "open " + frame.path + ": directory replaced during the walk";
            } else {
                frame.fd = std::move(fd);
                ++m_held;
                trim(); // keeps the deepest fds, so frame i - 1 and i stay open
                continue;
            }
        }
        // Frames i..index cannot be reached again: drop what they still had to visit.
        for (std::size_t j = i; j <= index; ++j) {
            m_stack[j].subdirs.clear();
        }
        if (!failure.empty()) {
            unreadable(failure, frame.path);
        }
        trim();
        return false;
    }
    trim();
    return true;
}

// Closes the shallowest held fds (never the bottom frame's) until at most m_held_max remain.
void Walker::trim() {
    for (std::size_t i = 1; m_held > m_held_max && i < m_stack.size(); ++i) {
        if (m_stack[i].fd) {
            m_stack[i].fd.reset();
            --m_held;
        }
    }
}

void Walker::pop() {
    if (m_stack.size() > 1 && m_stack.back().fd) {
        --m_held;
    }
    m_stack.pop_back();
}

// Gives half of the pending subdirectories of the shallowest frame that holds an fd and has
// two or more left (the biggest pieces of work) to the sink, with a dup of that frame's fd.
// Only the bottom frame and the deepest m_held_max + 1 frames can hold fds, so only those are
// looked at.
void Walker::share() {
    const std::size_t size = m_stack.size();
    const std::size_t window = m_held_max + 1;
    Frame* giver = nullptr;
    for (std::size_t i = 0; i < size && giver == nullptr;
         i = (i == 0 && size > window + 1) ? size - window : i + 1) {
        Frame& f = m_stack[i];
        if (f.fd && f.subdirs.size() >= 2) {
            giver = &f;
        }
    }
    if (giver == nullptr) {
        return;
    }
    Fd dup(::fcntl(giver->fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!dup) {
        return; // out of fds: keep the work
    }
    Frame given;
    given.name = giver->name;
    given.path = giver->path;
    given.depth = giver->depth;
    given.dev = giver->dev;
    given.ino = giver->ino;
    given.fd = std::move(dup);
    given.is_runtime = giver->is_runtime;
    // Names are taken from the back: give the front half, which this walker would reach last.
    auto& names = giver->subdirs;
    const auto half = static_cast<std::ptrdiff_t>(names.size() / 2);
    given.subdirs.assign(std::make_move_iterator(names.begin()),
                         std::make_move_iterator(names.begin() + half));
    names.erase(names.begin(), names.begin() + half);
    if (!m_sink->give(given)) {
        names.insert(names.begin(), std::make_move_iterator(given.subdirs.begin()),
                     std::make_move_iterator(given.subdirs.end()));
    }
}

void Walker::unreadable(std::string message, const std::string& path) {
    ++m_stats.unreadable_dirs;
    if (m_stats.errors.size() < k_max_errors) {
        m_stats.errors.push_back(WalkError{path, std::move(message)});
    }
}

void Walker::symlinked_runtime(const Frame& frame) {
    ++m_stats.symlinked_runtimes;
    if (m_stats.skipped.size() >= k_max_errors) {
        return;
    }
    const std::string path = join(frame.path, k_runtime_dir);
    std::string target(PATH_MAX, '\0');
    const ssize_t n = ::readlinkat(frame.fd.get(), std::string(k_runtime_dir).c_str(),
                                   target.data(), target.size());
    std::string message = path + " is a symlink";
    if (n >= 0) {
        target.resize(static_cast<std::size_t>(n));
        message += " to " + target;
    }
    message += ", not followed: a lock behind it is never judged";
    m_stats.skipped.push_back(WalkError{path, std::move(message)});
}

namespace {

void append_capped(std::vector<WalkError>& into, std::vector<WalkError>&& from) {
    for (auto& e : from) {
        if (into.size() >= k_max_errors) {
            break;
        }
        into.push_back(std::move(e));
    }
}

} // namespace

void merge_stats(WalkStats& into, WalkStats&& from) {
    into.dirs += from.dirs;
    into.unreadable_dirs += from.unreadable_dirs;
    into.symlinked_runtimes += from.symlinked_runtimes;
    into.cancelled = into.cancelled || from.cancelled;
    append_capped(into.errors, std::move(from.errors));
    append_capped(into.skipped, std::move(from.skipped));
}

} // namespace walk_detail

std::vector<std::string> default_prune_list() {
    return {".git", ".hg", ".svn", "node_modules", ".dolt-data", ".dolt-backup"};
}

unsigned default_walk_threads() {
    const unsigned cores = std::thread::hardware_concurrency();
    return std::clamp(cores, 1U, k_default_walk_threads_max);
}

Result<WalkStats> walk_locks(const std::string& root, const WalkOptions& options,
                             const LockVisitor& visit) {
    const unsigned threads = options.threads == 0 ? default_walk_threads() : options.threads;
    if (threads > 1) {
        return walk_detail::walk_locks_parallel(root, options, visit, threads);
    }
    walk_detail::Walker walker(options, visit);
    Status started = walker.start(root);
    if (!started) {
        return started.error();
    }
    walker.walk();
    return std::move(walker.stats());
}

} // namespace agentlock
