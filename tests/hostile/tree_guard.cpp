#include "tree_guard.hpp"

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <stdexcept>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace agentlock::hostile {

namespace {

std::runtime_error sys_error(const std::string& operation, const std::string& path, int saved) {
    return std::runtime_error(operation + " " + path + ": " + std::strerror(saved));
}

// Closes an fd on scope exit.
struct FdCloser {
    explicit FdCloser(int f) : fd(f) {}
    ~FdCloser() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    FdCloser(const FdCloser&) = delete;
    FdCloser& operator=(const FdCloser&) = delete;
    void reset(int f) {
        if (fd >= 0) {
            ::close(fd);
        }
        fd = f;
    }
    int fd;
};

// ---- snapshots ------------------------------------------------------------------------------

std::string describe(const std::string& path, const struct stat& st) {
    std::string d;
    switch (st.st_mode & S_IFMT) {
    case S_IFREG: {
        auto digest = sha256_file(path);
        d = "file size=" + std::to_string(st.st_size) +
            " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
            std::to_string(st.st_mtim.tv_nsec) + " sha256=" + digest.value_or("unreadable");
        break;
    }
    case S_IFDIR:
        d = "dir";
        break;
    case S_IFLNK: {
        std::array<char, 4096> buf{};
        const ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size() - 1);
        d = "symlink -> " +
            (n >= 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string("?"));
        break;
    }
    case S_IFIFO:
        d = "fifo";
        break;
    case S_IFSOCK:
        d = "socket";
        break;
    case S_IFCHR:
        d = "chardev " + std::to_string(st.st_rdev);
        break;
    case S_IFBLK:
        d = "blockdev " + std::to_string(st.st_rdev);
        break;
    default:
        d = "other";
    }
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return d + " mode=" + mode + " uid=" + std::to_string(st.st_uid) +
           " gid=" + std::to_string(st.st_gid);
}

void add_recursive(Snapshot& snap, const std::string& path,
                   const std::vector<std::string>& exclude) {
    for (const auto& e : exclude) {
        if (e == path) {
            return;
        }
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        snap.entries[path] = "missing (" + std::string(std::strerror(errno)) + ")";
        return;
    }
    snap.entries[path] = describe(path, st);
    if (!S_ISDIR(st.st_mode)) {
        return;
    }
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) {
        snap.entries[path] += " (unlistable)";
        return;
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(dir)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") {
            names.push_back(name);
        }
    }
    ::closedir(dir);
    for (const auto& name : names) {
        add_recursive(snap, path + "/" + name, exclude);
    }
}

} // namespace

std::optional<std::string> sha256_file(const std::string& path) {
    FdCloser fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (fd.fd < 0) {
        return std::nullopt;
    }
    Sha256 h;
    std::array<char, 65536> buf{};
    for (;;) {
        const ssize_t n = ::read(fd.fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return std::nullopt;
        }
        if (n == 0) {
            break;
        }
        h.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    }
    return h.hex_digest();
}

std::vector<std::string> Snapshot::differences_from(const Snapshot& before) const {
    std::vector<std::string> out;
    for (const auto& [path, was] : before.entries) {
        auto it = entries.find(path);
        if (it == entries.end()) {
            out.push_back("gone: " + path + " (was " + was + ")");
        } else if (it->second != was) {
            out.push_back("changed: " + path + " (was " + was + ", now " + it->second + ")");
        }
    }
    for (const auto& [path, now] : entries) {
        if (before.entries.find(path) == before.entries.end()) {
            out.push_back("new: " + path + " (" + now + ")");
        }
    }
    return out;
}

void add_to_snapshot(Snapshot& snap, const std::string& path,
                     const std::vector<std::string>& exclude) {
    add_recursive(snap, path, exclude);
}

void add_entry_to_snapshot(Snapshot& snap, const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        snap.entries[path] = "missing (" + std::string(std::strerror(errno)) + ")";
        return;
    }
    snap.entries[path] = describe(path, st);
}

void add_dir_files_to_snapshot(Snapshot& snap, const std::string& dir,
                               const std::vector<std::string>& exclude_names) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        throw sys_error("opendir", dir, errno);
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) {
        names.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& name : names) {
        if (name == "." || name == "..") {
            continue;
        }
        bool excluded = false;
        for (const auto& x : exclude_names) {
            excluded = excluded || x == name;
        }
        const std::string path = dir + "/" + name;
        struct stat st {};
        if (excluded || ::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        snap.entries[path] = describe(path, st);
    }
}

// ---- deep chains ----------------------------------------------------------------------------

namespace {

// Opens `name` under `dirfd` as a directory without following symlinks.
int open_dir_at(int dirfd, const std::string& name, const std::string& what) {
    const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        throw sys_error("open", what, errno);
    }
    return fd;
}

// An fd on the deepest directory of a chain of `depth` directories named `name` under `parent`.
int open_chain_bottom(const std::string& parent, const std::string& name, unsigned depth) {
    FdCloser fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.fd < 0) {
        throw sys_error("open", parent, errno);
    }
    for (unsigned i = 0; i < depth; ++i) {
        fd.reset(open_dir_at(fd.fd, name,
                             parent + "/" + name + "... (level " + std::to_string(i + 1) + ")"));
    }
    const int out = fd.fd;
    fd.fd = -1;
    return out;
}

} // namespace

std::string make_deep_chain(const std::string& parent, const std::string& name, unsigned depth,
                            bool side_branch) {
    FdCloser fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.fd < 0) {
        throw sys_error("open", parent, errno);
    }
    std::string path = parent;
    for (unsigned i = 0; i < depth; ++i) {
        if (::mkdirat(fd.fd, name.c_str(), 0755) != 0) {
            throw sys_error("mkdir", path + "/" + name, errno);
        }
        if (side_branch && ::mkdirat(fd.fd, "side", 0755) != 0) {
            throw sys_error("mkdir", path + "/side", errno);
        }
        fd.reset(open_dir_at(fd.fd, name, path + "/" + name));
        path += "/" + name;
    }
    return path;
}

void put_lock_at_depth(const std::string& parent, const std::string& name, unsigned depth,
                       const std::string& worker_name, const std::string& content) {
    FdCloser bottom(open_chain_bottom(parent, name, depth));
    if (::mkdirat(bottom.fd, worker_name.c_str(), 0755) != 0 && errno != EEXIST) {
        throw sys_error("mkdir", worker_name, errno);
    }
    FdCloser worker(open_dir_at(bottom.fd, worker_name, worker_name));
    if (::mkdirat(worker.fd, ".runtime", 0755) != 0 && errno != EEXIST) {
        throw sys_error("mkdir", worker_name + "/.runtime", errno);
    }
    FdCloser runtime(open_dir_at(worker.fd, ".runtime", worker_name + "/.runtime"));
    FdCloser file(::openat(runtime.fd, "agent.lock",
                           O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (file.fd < 0) {
        throw sys_error("create", worker_name + "/.runtime/agent.lock", errno);
    }
    if (::write(file.fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
        throw sys_error("write", worker_name + "/.runtime/agent.lock", errno);
    }
}

std::optional<std::string> read_lock_at_depth(const std::string& parent, const std::string& name,
                                              unsigned depth, const std::string& worker_name) {
    FdCloser bottom(open_chain_bottom(parent, name, depth));
    FdCloser worker(open_dir_at(bottom.fd, worker_name, worker_name));
    FdCloser runtime(open_dir_at(worker.fd, ".runtime", worker_name + "/.runtime"));
    FdCloser file(::openat(runtime.fd, "agent.lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (file.fd < 0) {
        if (errno == ENOENT) {
            return std::nullopt;
        }
        throw sys_error("open", worker_name + "/.runtime/agent.lock", errno);
    }
    std::string out;
    std::array<char, 4096> buf{};
    ssize_t n = 0;
    while ((n = ::read(file.fd, buf.data(), buf.size())) > 0) {
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
    return out;
}

namespace {

// Removes a directory whose entries are all plain files, symlinks or empty-ish directories of
// small depth (the side branches and workers of a chain level), recursively through fds.
void remove_shallow(int dirfd, const std::string& name) {
    FdCloser fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.fd < 0) {
        (void)::unlinkat(dirfd, name.c_str(), 0); // not a directory: a plain entry
        return;
    }
    const int dup_fd = ::dup(fd.fd);
    if (dup_fd < 0) {
        throw sys_error("dup", name, errno);
    }
    DIR* d = ::fdopendir(dup_fd);
    if (d == nullptr) {
        ::close(dup_fd);
        throw sys_error("fdopendir", name, errno);
    }
    std::vector<std::pair<std::string, bool>> entries;
    while (const dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") {
            entries.emplace_back(n, e->d_type == DT_DIR);
        }
    }
    ::closedir(d);
    for (const auto& [n, is_dir] : entries) {
        if (is_dir) {
            remove_shallow(fd.fd, n);
        } else {
            (void)::unlinkat(fd.fd, n.c_str(), 0);
        }
    }
    fd.reset(-1);
    (void)::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR);
}

} // namespace

void remove_deep_chain(const std::string& parent, const std::string& name) {
    // Flatten from the top: move the chain's second level up beside the first, then the first
    // level is shallow and can go. Each step costs O(1) fds and calls.
    FdCloser top(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (top.fd < 0) {
        return;
    }
    std::string current = name;
    for (unsigned step = 0;; ++step) {
        FdCloser level(
            ::openat(top.fd, current.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (level.fd < 0) {
            return;
        }
        const std::string next = ".chain-rest-" + std::to_string(step);
        const bool has_next = ::renameat(level.fd, name.c_str(), top.fd, next.c_str()) == 0;
        level.reset(-1);
        remove_shallow(top.fd, current);
        if (!has_next) {
            return;
        }
        current = next;
    }
}

// ---- mounts ---------------------------------------------------------------------------------

MountGuard::MountGuard(const std::string& source, const std::string& target,
                       const std::string& fstype, unsigned long flags, const std::string& data)
    : m_target(target) {
    if (::mount(source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), flags,
                data.empty() ? nullptr : data.c_str()) != 0) {
        m_error = "mount " + source + " on " + target + ": " + std::strerror(errno);
        return;
    }
    m_ok = true;
}

MountGuard::~MountGuard() {
    unmount();
}

void MountGuard::unmount() {
    if (m_ok) {
        (void)::umount2(m_target.c_str(), MNT_DETACH); // best effort in a destructor
        m_ok = false;
    }
}

// ---- running as another user ----------------------------------------------------------------

namespace {

std::string slurp(const std::string& path) {
    std::string text;
    FdCloser fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) {
        return text;
    }
    std::array<char, 8192> buf{};
    ssize_t n = 0;
    while ((n = ::read(fd.fd, buf.data(), buf.size())) > 0) {
        text.append(buf.data(), static_cast<std::size_t>(n));
    }
    return text;
}

} // namespace

UserRun run_as_user(uid_t id, const std::string& dir, const std::string& binary,
                    const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                    std::optional<std::chrono::milliseconds> stop_after) {
    const std::string out_path = dir + "/as-user.out";
    const std::string err_path = dir + "/as-user.err";
    FdCloser out_fd(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    FdCloser err_fd(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out_fd.fd < 0 || err_fd.fd < 0) {
        throw sys_error("open", dir + "/as-user.*", errno);
    }
    std::vector<std::string> argv_s{binary};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    const auto gid = static_cast<gid_t>(id);

    const pid_t pid = ::fork();
    if (pid < 0) {
        throw sys_error("fork", binary, errno);
    }
    if (pid == 0) {
        // Only async-signal-safe calls from here on.
        if (::dup2(out_fd.fd, STDOUT_FILENO) < 0 || ::dup2(err_fd.fd, STDERR_FILENO) < 0) {
            ::_exit(126);
        }
        if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
            ::setresuid(id, id, id) != 0) {
            ::_exit(126);
        }
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    UserRun r;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeout;
    bool stop_sent = false;
    int status = 0;
    for (;;) {
        if (stop_after && !stop_sent && std::chrono::steady_clock::now() >= start + *stop_after) {
            ::kill(pid, SIGTERM);
            stop_sent = true;
        }
        const pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            break;
        }
        if (w < 0 && errno != EINTR) {
            throw sys_error("waitpid", binary, errno);
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            r.timed_out = true;
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    r.exited = WIFEXITED(status);
    r.code = r.exited ? WEXITSTATUS(status) : -1;
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

} // namespace agentlock::hostile
