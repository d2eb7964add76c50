// Tests for walk_locks: real directory trees in temp dirs, with symlink, FIFO, socket, mount,
// permission and depth traps: the walk never follows a symlink out of the tree, prunes huge
// directories, and counts the directories it cannot read instead of swallowing the error.
#include <agentlock/fd.hpp>
#include <agentlock/tree_walk.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <grp.h>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace agentlock {
namespace {

namespace fs = std::filesystem;
using test::make_dirs;
using test::TempDir;
using test::TmpfsMount;
using test::write_file;

struct Found {
    std::string worker;
    std::string lock_path;
    bool operator<(const Found& o) const { return worker < o.worker; }
    bool operator==(const Found& o) const = default;
};

struct Walked {
    Result<WalkStats> result;
    std::vector<Found> locks; // sorted by worker
};

// Walks `root` and records every lock site; checks each site's runtime_fd while it is open.
Walked walk(const std::string& root, const WalkOptions& options = {}) {
    std::vector<Found> locks;
    auto result = walk_locks(root, options, [&locks](const LockSite& site) {
        struct stat st {};
        // The fd is the .runtime directory holding an entry named agent.lock.
        EXPECT_EQ(::fstatat(site.runtime_fd, "agent.lock", &st, AT_SYMLINK_NOFOLLOW), 0)
            << site.lock_path << ": " << std::strerror(errno);
        EXPECT_EQ(site.lock_path, site.worker + "/.runtime/agent.lock");
        locks.push_back({site.worker, site.lock_path});
    });
    std::sort(locks.begin(), locks.end());
    return {std::move(result), std::move(locks)};
}

std::vector<std::string> workers(const Walked& w) {
    std::vector<std::string> out;
    for (const auto& f : w.locks) {
        out.push_back(f.worker);
    }
    return out;
}

void add_lock(const std::string& worker) {
    write_file(worker + "/.runtime/agent.lock", "{\"pid\": 1}");
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

int count_open_fds() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) {
        return -1;
    }
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    ::closedir(d);
    return n - 1; // the opendir's own fd
}

TEST(TreeWalk, FindsEveryLockInANestedTree) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root);
    add_lock(root + "/a");
    add_lock(root + "/b/c");
    add_lock(root + "/b/c/d/e/f");
    add_lock(root + "/b/c/.runtime/inner");                // .runtime is walked like any directory
    write_file(root + "/g/.runtime/other", "x");           // no agent.lock: not a site
    write_file(root + "/h/.runtime/agent.lock.flock", ""); // sidecar only: not a site
    write_file(root + "/i/agent.lock", "{}");              // not under .runtime
    write_file(root + "/j/runtime/agent.lock", "{}");      // wrong directory name
    make_dirs(root + "/k/.runtime/agent.lock.d");

    auto w = walk(root);
    ASSERT_TRUE(w.result.ok()) << w.result.error().message;
    EXPECT_EQ(workers(w), sorted({root, root + "/a", root + "/b/c", root + "/b/c/d/e/f",
                                  root + "/b/c/.runtime/inner"}));
    for (const auto& f : w.locks) {
        EXPECT_EQ(f.lock_path, f.worker + "/.runtime/agent.lock");
    }
    EXPECT_EQ(w.result->unreadable_dirs, 0U);
    EXPECT_TRUE(w.result->errors.empty());
}

TEST(TreeWalk, CountsEveryDirectoryReadOnce) {
    TempDir tmp;
    const std::string root = tmp.path();
    // root, a, a/b, a/b/.runtime, c, c/.runtime, c/.runtime/x = 7 directories.
    add_lock(root + "/a/b");
    add_lock(root + "/c");
    make_dirs(root + "/c/.runtime/x");
    for (int i = 0; i < 50; ++i) {
        write_file(root + "/a/file" + std::to_string(i), "not a directory");
    }
    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(w.result->dirs, 7U);
    EXPECT_EQ(w.locks.size(), 2U);
}

TEST(TreeWalk, RootWithTrailingSlashGivesCleanPaths) {
    TempDir tmp;
    add_lock(tmp.sub("w"));
    auto w = walk(tmp.path() + "/");
    ASSERT_TRUE(w.result.ok());
    ASSERT_EQ(w.locks.size(), 1U);
    EXPECT_EQ(w.locks[0].worker, tmp.sub("w"));
    EXPECT_EQ(w.locks[0].lock_path, tmp.sub("w/.runtime/agent.lock"));
}

TEST(TreeWalk, RuntimeFdIsTheRuntimeDirectory) {
    TempDir tmp;
    add_lock(tmp.sub("w"));
    struct stat expected {};
    ASSERT_EQ(::stat(tmp.sub("w/.runtime").c_str(), &expected), 0);
    int calls = 0;
    auto r = walk_locks(tmp.path(), {}, [&](const LockSite& site) {
        ++calls;
        struct stat st {};
        ASSERT_EQ(::fstat(site.runtime_fd, &st), 0);
        EXPECT_EQ(st.st_dev, expected.st_dev);
        EXPECT_EQ(st.st_ino, expected.st_ino);
        EXPECT_EQ(::fcntl(site.runtime_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(calls, 1);
}

TEST(TreeWalk, DefaultPruneListIsNotEntered) {
    TempDir tmp;
    const std::string root = tmp.path();
    for (const auto& pruned : default_prune_list()) {
        add_lock(root + "/" + pruned + "/x");
        add_lock(root + "/src/" + pruned + "/deeper/y");
        add_lock(root + "/" + pruned); // the pruned directory itself as a worker
    }
    add_lock(root + "/src");
    add_lock(root + "/src/git"); // similar names are not pruned
    add_lock(root + "/src/.gitignore.d");

    EXPECT_EQ(default_prune_list(), (std::vector<std::string>{".git", ".hg", ".svn", "node_modules",
                                                              ".dolt-data", ".dolt-backup"}));
    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), sorted({root + "/src", root + "/src/git", root + "/src/.gitignore.d"}));
}

TEST(TreeWalk, CustomPruneListReplacesTheDefault) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root + "/vendor/x");
    add_lock(root + "/a/build/y");
    add_lock(root + "/.git/x");
    add_lock(root + "/a");

    WalkOptions options;
    options.prune = {"vendor", "build"};
    auto w = walk(root, options);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), sorted({root + "/.git/x", root + "/a"}));

    options.prune.clear();
    w = walk(root, options);
    EXPECT_EQ(w.locks.size(), 4U);
}

TEST(TreeWalk, MaxDepthFindsWorkersUpToThatDepth) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root);                // worker at depth 0
    add_lock(root + "/a");         // 1
    add_lock(root + "/a/b");       // 2
    add_lock(root + "/a/b/c");     // 3
    add_lock(root + "/a/b/c/d/e"); // 5

    const std::vector<std::string> all = {root, root + "/a", root + "/a/b", root + "/a/b/c",
                                          root + "/a/b/c/d/e"};
    for (unsigned depth = 0; depth <= 6; ++depth) {
        WalkOptions options;
        options.max_depth = depth;
        auto w = walk(root, options);
        ASSERT_TRUE(w.result.ok());
        std::vector<std::string> expected;
        for (const auto& worker : all) {
            const auto level = static_cast<unsigned>(
                std::count(worker.begin() + static_cast<long>(root.size()), worker.end(), '/'));
            if (level <= depth) {
                expected.push_back(worker);
            }
        }
        EXPECT_EQ(workers(w), sorted(expected)) << "max_depth " << depth;
    }
    auto unlimited = walk(root);
    EXPECT_EQ(workers(unlimited), sorted(all));
}

TEST(TreeWalk, MaxDepthDoesNotEnterBelowTheExtraRuntimeLevel) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root + "/a");
    add_lock(root + "/a/.runtime/x"); // worker at depth 3, below a depth-2 .runtime
    WalkOptions options;
    options.max_depth = 1;
    auto w = walk(root, options);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), std::vector<std::string>{root + "/a"});
    // root, a, a/.runtime: a/.runtime/x is not read.
    EXPECT_EQ(w.result->dirs, 3U);
}

TEST(TreeWalk, SymlinkedRuntimeOutsideTheRootIsNotFollowed) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    add_lock(tmp.sub("outside"));
    make_dirs(root + "/w");
    fs::create_symlink(tmp.sub("outside/.runtime"), root + "/w/.runtime");
    add_lock(root + "/real");

    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), std::vector<std::string>{root + "/real"});
    EXPECT_EQ(w.result->unreadable_dirs, 0U);
}

// A symlinked .runtime is not followed, but the walk says so, with the link's target: an agent
// that locked through it would otherwise be invisible to the daemon.
TEST(TreeWalk, SymlinkedRuntimeIsReportedWithItsTarget) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    add_lock(tmp.sub("outside"));
    make_dirs(root + "/rig/w");
    fs::create_symlink(tmp.sub("outside/.runtime"), root + "/rig/w/.runtime");
    make_dirs(root + "/dangling");
    fs::create_symlink("nowhere", root + "/dangling/.runtime");
    // Not where a worker's .runtime is read: in the root itself, and under a pruned directory.
    fs::create_symlink(tmp.sub("outside/.runtime"), root + "/.runtime");
    make_dirs(root + "/rig/.git/x");
    fs::create_symlink(tmp.sub("outside/.runtime"), root + "/rig/.git/x/.runtime");
    // Not a .runtime: an ordinary symlink is not news.
    fs::create_symlink(tmp.sub("outside"), root + "/rig/other");

    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_TRUE(w.locks.empty());
    EXPECT_EQ(w.result->symlinked_runtimes, 2U);
    ASSERT_EQ(w.result->skipped.size(), 2U);
    std::vector<WalkError> skipped = w.result->skipped;
    std::sort(skipped.begin(), skipped.end(),
              [](const WalkError& a, const WalkError& b) { return a.path < b.path; });
    EXPECT_EQ(skipped[0].path, root + "/dangling/.runtime");
    EXPECT_EQ(skipped[0].message, root + "/dangling/.runtime is a symlink to nowhere, not "
                                         "followed: a lock behind it is never judged");
    EXPECT_EQ(skipped[1].path, root + "/rig/w/.runtime");
    EXPECT_NE(skipped[1].message.find(" to " + tmp.sub("outside/.runtime")), std::string::npos)
        << skipped[1].message;
    EXPECT_EQ(w.result->unreadable_dirs, 0U);
    EXPECT_TRUE(w.result->errors.empty());
    EXPECT_TRUE(fs::is_symlink(root + "/rig/w/.runtime"));
}

TEST(TreeWalk, ACancelSetBeforehandReadsOnlyTheRoot) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    add_lock(root + "/a");
    add_lock(root + "/b/c");
    const std::atomic<bool> cancel{true};
    for (unsigned threads : {1U, 4U}) {
        WalkOptions options;
        options.threads = threads;
        options.cancel = &cancel;
        auto w = walk(root, options);
        ASSERT_TRUE(w.result.ok());
        EXPECT_TRUE(w.result->cancelled);
        EXPECT_TRUE(w.locks.empty()) << threads << " threads";
        EXPECT_EQ(w.result->dirs, 1U) << threads << " threads";
    }
    WalkOptions options;
    const std::atomic<bool> go_on{false};
    options.cancel = &go_on;
    auto w = walk(root, options);
    ASSERT_TRUE(w.result.ok());
    EXPECT_FALSE(w.result->cancelled);
    EXPECT_EQ(w.locks.size(), 2U);
}

TEST(TreeWalk, SymlinkedRuntimesPastMaxDepthAreNotReported) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    make_dirs(root + "/a/b");
    fs::create_symlink("/tmp", root + "/a/.runtime");   // worker a at depth 1
    fs::create_symlink("/tmp", root + "/a/b/.runtime"); // worker a/b at depth 2
    WalkOptions options;
    options.max_depth = 1;
    auto w = walk(root, options);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(w.result->symlinked_runtimes, 1U);
    ASSERT_EQ(w.result->skipped.size(), 1U);
    EXPECT_EQ(w.result->skipped[0].path, root + "/a/.runtime");
}

TEST(TreeWalk, SkippedListIsCappedButTheCountIsNot) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    for (int i = 0; i < 130; ++i) {
        const std::string worker = root + "/w" + std::to_string(i);
        make_dirs(worker);
        fs::create_symlink("/tmp", worker + "/.runtime");
    }
    for (unsigned threads : {1U, 3U}) {
        WalkOptions options;
        options.threads = threads;
        auto w = walk(root, options);
        ASSERT_TRUE(w.result.ok());
        EXPECT_EQ(w.result->symlinked_runtimes, 130U) << threads << " threads";
        EXPECT_EQ(w.result->skipped.size(), 100U) << threads << " threads";
    }
}

TEST(TreeWalk, SymlinkedWorkerDirectoryIsNotFollowed) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    add_lock(tmp.sub("outside/worker"));
    make_dirs(root);
    fs::create_symlink(tmp.sub("outside/worker"), root + "/worker");
    fs::create_symlink(tmp.sub("outside"), root + "/all");

    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_TRUE(w.locks.empty());
    EXPECT_EQ(w.result->dirs, 1U);
}

TEST(TreeWalk, RootMayBeGivenThroughASymlink) {
    TempDir tmp;
    add_lock(tmp.sub("real/w"));
    fs::create_symlink(tmp.sub("real"), tmp.sub("link"));
    auto w = walk(tmp.sub("link"));
    ASSERT_TRUE(w.result.ok()) << w.result.error().message;
    EXPECT_EQ(workers(w), std::vector<std::string>{tmp.sub("link/w")});
}

TEST(TreeWalk, SymlinkLoopsTerminate) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root + "/a/b");
    fs::create_symlink(root, root + "/a/b/up");
    fs::create_symlink("..", root + "/a/parent");
    fs::create_symlink("self", root + "/self"); // a symlink to itself
    fs::create_symlink("loop2", root + "/loop1");
    fs::create_symlink("loop1", root + "/loop2");
    fs::create_symlink("../../a", root + "/a/b/.runtime/back");

    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), std::vector<std::string>{root + "/a/b"});
    EXPECT_EQ(w.result->dirs, 4U); // root, a, a/b, a/b/.runtime
    EXPECT_EQ(w.result->unreadable_dirs, 0U);
}

TEST(TreeWalk, SymlinkToEtcIsNotEntered) {
    TempDir tmp;
    const std::string root = tmp.path();
    fs::create_symlink("/etc", root + "/etc");
    fs::create_symlink("/", root + "/slash");
    add_lock(root + "/w");
    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), std::vector<std::string>{root + "/w"});
    EXPECT_EQ(w.result->dirs, 3U); // root, w, w/.runtime
}

TEST(TreeWalk, AgentLockOfAnyTypeIsVisited) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root + "/regular");
    make_dirs(root + "/fifo/.runtime");
    ASSERT_EQ(::mkfifo((root + "/fifo/.runtime/agent.lock").c_str(), 0644), 0);
    make_dirs(root + "/symlink/.runtime");
    fs::create_symlink("/etc/passwd", root + "/symlink/.runtime/agent.lock");
    make_dirs(root + "/dangling/.runtime");
    fs::create_symlink("/nonexistent/x", root + "/dangling/.runtime/agent.lock");
    make_dirs(root + "/dir/.runtime/agent.lock");
    make_dirs(root + "/socket/.runtime");
    const std::string sock_path = root + "/socket/.runtime/agent.lock";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(sock_path.size(), sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
    Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(sock.valid());
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    // Traps that are not lock sites must not hang the walk either.
    ASSERT_EQ(::mkfifo((root + "/fifo/.runtime/agent.lock.flock").c_str(), 0644), 0);
    ASSERT_EQ(::mkfifo((root + "/a-fifo").c_str(), 0644), 0);

    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), sorted({root + "/regular", root + "/fifo", root + "/symlink",
                                  root + "/dangling", root + "/dir", root + "/socket"}));
}

TEST(TreeWalk, RuntimeThatIsAFifoOrFileIsNotEntered) {
    TempDir tmp;
    const std::string root = tmp.path();
    make_dirs(root + "/w");
    ASSERT_EQ(::mkfifo((root + "/w/.runtime").c_str(), 0644), 0);
    write_file(root + "/v/.runtime", "a file");
    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_TRUE(w.locks.empty());
    EXPECT_EQ(w.result->dirs, 3U);
}

TEST(TreeWalk, NamesAreJustBytes) {
    TempDir tmp;
    const std::string root = tmp.path();
    const std::string newline = root + "/line\nbreak";
    const std::string invalid_utf8 = root + "/bad\xff\xfe\x80utf8";
    const std::string spaces = root + "/ with spaces \t";
    add_lock(newline);
    add_lock(invalid_utf8 + "/inner\n");
    add_lock(spaces);
    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), sorted({newline, invalid_utf8 + "/inner\n", spaces}));
}

TEST(TreeWalk, RootThatCannotBeOpenedIsAnError) {
    TempDir tmp;
    auto missing = walk(tmp.sub("missing"));
    ASSERT_FALSE(missing.result.ok());
    EXPECT_EQ(missing.result.error().kind, ErrorKind::io);
    EXPECT_EQ(missing.result.error().path, tmp.sub("missing"));
    EXPECT_EQ(missing.result.error().message,
              "open " + tmp.sub("missing") + ": No such file or directory");

    write_file(tmp.sub("file"), "x");
    auto file = walk(tmp.sub("file"));
    ASSERT_FALSE(file.result.ok());
    EXPECT_EQ(file.result.error().code, std::errc::not_a_directory);
}

// ---- Unreadable directories: checked as an unprivileged user, since root ignores modes ----

struct ChildReport {
    std::string failure;
    std::uint64_t dirs = 0;
    std::uint64_t unreadable = 0;
    std::vector<WalkError> errors;
    std::vector<std::string> workers;
};

// Runs walk_locks(root) as uid/gid 65534 in a forked child when we are root (modes are
// ignored for root), in-process otherwise. Paths must not contain tabs or newlines.
ChildReport walk_unprivileged(const std::string& root, bool* skipped) {
    *skipped = false;
    auto run = [&root]() {
        std::ostringstream out;
        auto r = walk_locks(
            root, {}, [&out](const LockSite& site) { out << "lock\t" << site.worker << "\n"; });
        if (!r.ok()) {
            out << "fail\t" << r.error().message << "\n";
            return out.str();
        }
        out << "dirs\t" << r->dirs << "\n"
            << "unreadable\t" << r->unreadable_dirs << "\n";
        for (const auto& e : r->errors) {
            out << "error\t" << e.path << "\t" << e.message << "\n";
        }
        return out.str();
    };
    std::string text;
    if (::geteuid() != 0) {
        text = run();
    } else {
        test::AsUserResult r = test::run_as_nobody(run);
        text = r.dropped ? r.output : "skip\tcannot drop privileges: " + r.output + "\n";
    }
    ChildReport report;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const auto tab = line.find('\t');
        const std::string kind = line.substr(0, tab);
        const std::string rest = line.substr(tab + 1);
        if (kind == "skip") {
            *skipped = true;
            report.failure = rest;
        } else if (kind == "fail") {
            report.failure = rest;
        } else if (kind == "lock") {
            report.workers.push_back(rest);
        } else if (kind == "dirs") {
            report.dirs = std::stoull(rest);
        } else if (kind == "unreadable") {
            report.unreadable = std::stoull(rest);
        } else if (kind == "error") {
            const auto tab2 = rest.find('\t');
            report.errors.push_back({rest.substr(0, tab2), rest.substr(tab2 + 1)});
        }
    }
    std::sort(report.workers.begin(), report.workers.end());
    return report;
}

void chmod_or_fail(const std::string& path, mode_t mode) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path << ": " << std::strerror(errno);
}

TEST(TreeWalk, UnreadableDirectoriesAreCountedAndReported) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root + "/open");
    add_lock(root + "/secret/w");     // mode 000: cannot be opened
    add_lock(root + "/listonly/sub"); // mode 0644: listed, but its entries cannot be opened
    add_lock(root + "/after/z");
    chmod_or_fail(root, 0755);
    chmod_or_fail(root + "/secret", 0);
    chmod_or_fail(root + "/listonly", 0644);

    bool skipped = false;
    auto report = walk_unprivileged(root, &skipped);
    if (skipped) {
        GTEST_SKIP() << report.failure;
    }
    ASSERT_TRUE(report.failure.empty()) << report.failure;
    EXPECT_EQ(report.workers, sorted({root + "/open", root + "/after/z"}));
    EXPECT_EQ(report.unreadable, 2U);
    ASSERT_EQ(report.errors.size(), 2U);
    std::sort(report.errors.begin(), report.errors.end(),
              [](const WalkError& a, const WalkError& b) { return a.path < b.path; });
    EXPECT_EQ(report.errors[0].path, root + "/listonly/sub");
    EXPECT_EQ(report.errors[0].message, "open " + root + "/listonly/sub: Permission denied");
    EXPECT_EQ(report.errors[1].path, root + "/secret");
    EXPECT_EQ(report.errors[1].message, "open " + root + "/secret: Permission denied");
    // root, open, open/.runtime, listonly, after, after/z, after/z/.runtime
    EXPECT_EQ(report.dirs, 7U);
}

TEST(TreeWalk, ErrorListIsCappedButTheCountIsNot) {
    TempDir tmp;
    const std::string root = tmp.path();
    chmod_or_fail(root, 0755);
    for (int i = 0; i < 150; ++i) {
        const std::string dir = root + "/locked" + std::to_string(i);
        make_dirs(dir);
        chmod_or_fail(dir, 0);
    }
    add_lock(root + "/w");
    bool skipped = false;
    auto report = walk_unprivileged(root, &skipped);
    if (skipped) {
        GTEST_SKIP() << report.failure;
    }
    ASSERT_TRUE(report.failure.empty()) << report.failure;
    EXPECT_EQ(report.unreadable, 150U);
    EXPECT_EQ(report.errors.size(), 100U);
    EXPECT_EQ(report.workers, std::vector<std::string>{root + "/w"});
}

// ---- Depth ----

// Creates `levels` nested directories named "d" below `top` through fds (the full path is far
// longer than PATH_MAX) and a lock in the deepest one.
void make_chain(const std::string& top, int levels) {
    Fd fd(::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    for (int i = 0; i < levels; ++i) {
        ASSERT_EQ(::mkdirat(fd.get(), "d", 0755), 0) << "level " << i;
        Fd next(::openat(fd.get(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(next.valid()) << "level " << i;
        fd = std::move(next);
    }
    ASSERT_EQ(::mkdirat(fd.get(), ".runtime", 0755), 0);
    Fd rt(::openat(fd.get(), ".runtime", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    Fd lock(::openat(rt.get(), "agent.lock", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(lock.valid());
}

// Removes a chain made by make_chain with short paths only: moves each level up to `top`.
void remove_chain(const std::string& top) {
    const std::string head = top + "/d";
    const std::string next = top + "/next";
    std::error_code ec;
    while (fs::exists(head + "/d", ec)) {
        fs::rename(head + "/d", next);
        fs::remove_all(head);
        fs::rename(next, head);
    }
    fs::remove_all(head);
}

// Removes the chain even when the test fails half-way (TempDir cannot: its paths would be too
// long).
class ChainCleanup {
public:
    explicit ChainCleanup(std::string top) : m_top(std::move(top)) {}
    ~ChainCleanup() {
        try {
            remove_chain(m_top);
        } catch (const std::exception&) {
            // Leave the rest to TempDir.
        }
    }
    ChainCleanup(const ChainCleanup&) = delete;
    ChainCleanup& operator=(const ChainCleanup&) = delete;

private:
    std::string m_top;
};

// Lowers the soft RLIMIT_NOFILE for the scope of a test.
class FdLimit {
public:
    explicit FdLimit(rlim_t soft) {
        ::getrlimit(RLIMIT_NOFILE, &m_saved);
        rlimit lowered = m_saved;
        lowered.rlim_cur = std::min(soft, m_saved.rlim_max);
        ::setrlimit(RLIMIT_NOFILE, &lowered);
    }
    ~FdLimit() { ::setrlimit(RLIMIT_NOFILE, &m_saved); }
    FdLimit(const FdLimit&) = delete;
    FdLimit& operator=(const FdLimit&) = delete;

private:
    rlimit m_saved{};
};

TEST(TreeWalk, TenThousandLevelsDeepWithBoundedFds) {
    TempDir tmp;
    const std::string root = tmp.path();
    constexpr int k_levels = 10000;
    ChainCleanup cleanup(root);
    make_chain(root, k_levels);
    if (HasFatalFailure()) {
        return;
    }
    const int before = count_open_fds();
    int max_during = 0;
    std::vector<std::string> found;
    {
        FdLimit limit(static_cast<rlim_t>(before) + 100); // far fewer than the depth
        auto r = walk_locks(root, {}, [&](const LockSite& site) {
            max_during = std::max(max_during, count_open_fds());
            found.push_back(site.worker);
        });
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(r->dirs, static_cast<std::uint64_t>(k_levels + 2)); // + root and .runtime
        EXPECT_EQ(r->unreadable_dirs, 0U);
    }
    ASSERT_EQ(found.size(), 1U);
    std::string expected = root;
    for (int i = 0; i < k_levels; ++i) {
        expected += "/d";
    }
    EXPECT_EQ(found[0], expected);
    EXPECT_GT(max_during, before);
    EXPECT_LE(max_during, before + 40);
    EXPECT_EQ(count_open_fds(), before); // nothing leaked
}

TEST(TreeWalk, DeepTreeWithSideBranchesAtEveryLevel) {
    // Branches left behind below the fd window must be reached again by name, not by path.
    TempDir tmp;
    const std::string root = tmp.path();
    constexpr int k_levels = 150;
    std::vector<std::string> expected;
    std::string dir = root;
    for (int i = 0; i < k_levels; ++i) {
        dir += "/d";
        add_lock(dir + "/side" + std::to_string(i));
        add_lock(dir + "/zside" + std::to_string(i));
        expected.push_back(dir + "/side" + std::to_string(i));
        expected.push_back(dir + "/zside" + std::to_string(i));
    }
    add_lock(dir);
    expected.push_back(dir);

    const int before = count_open_fds();
    int max_during = 0;
    std::vector<std::string> found;
    auto r = walk_locks(root, {}, [&](const LockSite& site) {
        max_during = std::max(max_during, count_open_fds());
        found.push_back(site.worker);
    });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(sorted(found), sorted(expected));
    EXPECT_EQ(r->unreadable_dirs, 0U);
    // root + chain + .runtime at the bottom + per level: 2 sides with their .runtime
    EXPECT_EQ(r->dirs, static_cast<std::uint64_t>(1 + k_levels + 1 + 4 * k_levels));
    EXPECT_LE(max_during, before + 40);
    EXPECT_EQ(count_open_fds(), before);
}

// Two branches below `p`, each 100 levels deep with a lock at the bottom. Whichever lock is
// visited first, the visitor swaps `p` for something else; the walk must not reach the other
// branch through the new `p`.
void build_two_branches(const std::string& p) {
    std::string a = p + "/a";
    std::string b = p + "/b";
    for (int i = 0; i < 100; ++i) {
        a += "/x";
        b += "/x";
    }
    add_lock(a);
    add_lock(b);
}

TEST(TreeWalk, DirectoryReplacedDuringTheWalkIsNotReEntered) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    build_two_branches(root + "/p");
    int calls = 0;
    auto r = walk_locks(root, {}, [&](const LockSite&) {
        if (++calls == 1) {
            fs::rename(root + "/p", tmp.sub("p-old"));
            build_two_branches(root + "/p"); // same names, new inodes
        }
    });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(calls, 1);
    ASSERT_EQ(r->unreadable_dirs, 1U);
    ASSERT_EQ(r->errors.size(), 1U);
    EXPECT_EQ(r->errors[0].path, root + "/p");
    EXPECT_EQ(r->errors[0].message, "open " + root + "/p: directory replaced during the walk");
}

TEST(TreeWalk, DirectorySwappedForASymlinkDuringTheWalkIsNotFollowed) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    build_two_branches(root + "/p");
    int calls = 0;
    auto r = walk_locks(root, {}, [&](const LockSite&) {
        if (++calls == 1) {
            // The symlink leads to the very same directory: still not followed.
            fs::rename(root + "/p", tmp.sub("p-old"));
            fs::create_symlink(tmp.sub("p-old"), root + "/p");
        }
    });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(r->unreadable_dirs, 0U);
}

// ---- Mounts ----

TEST(TreeWalk, OneFileSystemDoesNotCrossMounts) {
    TempDir tmp;
    const std::string root = tmp.path();
    add_lock(root + "/here");
    TmpfsMount mnt(root + "/mnt");
    if (!mnt.error().empty()) {
        GTEST_SKIP() << "cannot mount a tmpfs here: " << mnt.error();
    }
    add_lock(root + "/mnt/there");
    add_lock(root + "/mnt"); // the mount point as a worker

    auto w = walk(root);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), std::vector<std::string>{root + "/here"});
    EXPECT_EQ(w.result->unreadable_dirs, 0U);

    WalkOptions crossing;
    crossing.one_file_system = false;
    w = walk(root, crossing);
    ASSERT_TRUE(w.result.ok());
    EXPECT_EQ(workers(w), sorted({root + "/here", root + "/mnt", root + "/mnt/there"}));
}

} // namespace
} // namespace agentlock
