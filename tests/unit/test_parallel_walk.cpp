// Tests for the parallel walk (WalkOptions::threads > 1): on real generated trees with nesting,
// pruned directories, symlinks, unreadable directories, mounts and depth limits it must find
// exactly what the serial walk finds, with the same counts, bounded fds and serialized visits.
#include <agentlock/tree_walk.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace agentlock {
namespace {

namespace fs = std::filesystem;
using test::count_open_fds;
using test::make_dirs;
using test::TempDir;
using test::TmpfsMount;
using test::write_file;

void add_lock(const std::string& worker) {
    write_file(worker + "/.runtime/agent.lock", "{\"pid\": 1}");
}

void chmod_or_throw(const std::string& path, mode_t mode) {
    if (::chmod(path.c_str(), mode) != 0) {
        throw std::runtime_error("chmod " + path + ": " + std::strerror(errno));
    }
}

// Everything a walk tells, as sorted text lines, so that two walks compare with one EXPECT_EQ
// and a difference shows which line differs. Each visit also checks that runtime_fd is the
// .runtime directory holding agent.lock.
std::string outcome(const std::string& root, const WalkOptions& options) {
    std::vector<std::string> lines;
    std::mutex m;
    auto r = walk_locks(root, options, [&](const LockSite& site) {
        struct stat st {};
        const bool fd_ok =
            ::fstatat(site.runtime_fd, "agent.lock", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            site.lock_path == site.worker + "/.runtime/agent.lock";
        const std::lock_guard lock(m);
        lines.push_back("site\t" + site.worker + (fd_ok ? "" : "\tBAD FD OR PATH"));
    });
    if (!r.ok()) {
        return "root error\t" + r.error().message + "\n";
    }
    for (const auto& e : r->errors) {
        lines.push_back("error\t" + e.path + "\t" + e.message);
    }
    for (const auto& e : r->skipped) {
        lines.push_back("skipped\t" + e.path + "\t" + e.message);
    }
    std::sort(lines.begin(), lines.end());
    std::ostringstream out;
    out << "dirs\t" << r->dirs << "\nunreadable\t" << r->unreadable_dirs << "\nsymlinked\t"
        << r->symlinked_runtimes << "\n";
    for (const auto& line : lines) {
        out << line << "\n";
    }
    return out.str();
}

// outcome() as uid/gid 65534 in a forked child when we are root (root ignores modes, so
// unreadable directories would be read), in-process otherwise. Sets `skip` when we are root
// but privileges cannot be dropped.
std::string outcome_unprivileged(const std::string& root, const WalkOptions& options,
                                 std::string* skip) {
    if (::geteuid() != 0) {
        return outcome(root, options);
    }
    test::AsUserResult r = test::run_as_nobody([&] { return outcome(root, options); });
    if (!r.dropped) {
        *skip = r.output;
    }
    return r.output;
}

// A town-like tree with every trap the walk knows, random in shape but the same every run:
// rigs of workers with checkouts, pruned directories holding locks, nested workers, .runtime
// inside .runtime, agent.lock of several types, symlinks in and out of the root and loops,
// unreadable directories, and a deep branch that makes walkers re-open frames by name.
void build_tree(const std::string& root, const std::string& outside) {
    std::mt19937 rng(20240611);
    auto chance = [&rng](unsigned percent) { return rng() % 100 < percent; };
    add_lock(outside + "/elsewhere");
    add_lock(outside);
    for (int r = 0; r < 6; ++r) {
        const std::string rig = root + "/rig" + std::to_string(r);
        const int workers = 10 + static_cast<int>(rng() % 30);
        for (int w = 0; w < workers; ++w) {
            const std::string worker = rig + "/polecats/w" + std::to_string(w);
            const int dirs = static_cast<int>(rng() % 4);
            for (int d = 0; d < dirs; ++d) {
                write_file(worker + "/src/d" + std::to_string(d) + "/f.txt", "x");
            }
            write_file(worker + "/.git/objects/o1", "x");
            if (chance(10)) {
                add_lock(worker + "/.git/hooks"); // pruned: never found
            }
            if (chance(10)) {
                add_lock(worker + "/node_modules/pkg"); // pruned by default
            }
            switch (rng() % 8) {
            case 0:
                break; // no lock
            case 1:
                write_file(worker + "/.runtime/other", "x"); // .runtime without agent.lock
                break;
            case 2:
                make_dirs(worker + "/.runtime/agent.lock"); // a directory named agent.lock
                break;
            case 3:
                make_dirs(worker + "/.runtime");
                fs::create_symlink("/etc/passwd", worker + "/.runtime/agent.lock");
                break;
            case 4:
                add_lock(worker);
                add_lock(worker + "/.runtime/inner"); // .runtime is walked like any directory
                break;
            default:
                add_lock(worker);
                break;
            }
            if (chance(15)) {
                add_lock(worker + "/sub/nested"); // a worker inside a worker
            }
            if (chance(10)) {
                make_dirs(worker);
                fs::create_symlink(outside, worker + "/link-out"); // never followed
            }
            if (chance(10)) {
                make_dirs(worker);
                fs::create_symlink(root, worker + "/loop");
            }
            if (chance(5)) {
                make_dirs(worker);
                fs::create_symlink(outside + "/.runtime", worker + "/.runtime-elsewhere");
            }
            if (chance(5) && !fs::exists(worker + "/.runtime")) {
                fs::create_symlink(outside + "/.runtime", worker + "/.runtime");
            }
            if (chance(4)) {
                add_lock(worker + "/secret");
                chmod_or_throw(worker + "/secret", 0); // cannot be opened
            }
            if (chance(3)) {
                add_lock(worker + "/listonly/w");
                chmod_or_throw(worker + "/listonly", 0644); // listed, entries not openable
            }
        }
    }
    // A deep branch with side branches: more levels than a parallel walker holds fds for.
    std::string dir = root + "/deep";
    for (int i = 0; i < 60; ++i) {
        dir += "/d";
        add_lock(dir + "/side" + std::to_string(i));
        if (i % 7 == 0) {
            make_dirs(dir + "/empty" + std::to_string(i));
        }
    }
    add_lock(dir);
    chmod_or_throw(root, 0755);
    chmod_or_throw(fs::path(root).parent_path().string(), 0755);
}

class ParallelWalk : public ::testing::Test {
protected:
    void SetUp() override {
        m_root = m_tmp.sub("root");
        m_outside = m_tmp.sub("outside");
        ASSERT_NO_THROW(build_tree(m_root, m_outside));
    }
    TempDir m_tmp;
    std::string m_root;
    std::string m_outside;
};

TEST_F(ParallelWalk, SameResultsAsTheSerialWalk) {
    const std::string serial = outcome(m_root, {});
    // The tree is big enough to mean something: guard against a generator that broke.
    EXPECT_GT(std::count(serial.begin(), serial.end(), '\n'), 100) << serial;
    EXPECT_EQ(serial.find("BAD FD"), std::string::npos) << serial;
    // Symlinked .runtime entries are reported (naming their target), never followed.
    EXPECT_EQ(serial.find("symlinked\t0\n"), std::string::npos) << serial;
    EXPECT_NE(serial.find("\nskipped\t"), std::string::npos) << serial;
    std::istringstream lines(serial);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("site\t", 0) == 0) {
            EXPECT_EQ(line.find(m_outside), std::string::npos) << line;
        }
    }
    for (unsigned threads : {2U, 3U, 4U, 8U}) {
        WalkOptions options;
        options.threads = threads;
        for (int run = 0; run < 3; ++run) {
            EXPECT_EQ(outcome(m_root, options), serial) << threads << " threads, run " << run;
        }
    }
}

TEST_F(ParallelWalk, SameUnreadableDirectoriesAsTheSerialWalk) {
    std::string skip;
    const std::string serial = outcome_unprivileged(m_root, {}, &skip);
    if (!skip.empty()) {
        GTEST_SKIP() << skip;
    }
    // The generator made unreadable directories; the serial walk must have met some.
    EXPECT_NE(serial.find("Permission denied"), std::string::npos) << serial;
    EXPECT_EQ(serial.find("unreadable\t0\n"), std::string::npos) << serial;
    for (unsigned threads : {2U, 4U}) {
        WalkOptions options;
        options.threads = threads;
        EXPECT_EQ(outcome_unprivileged(m_root, options, &skip), serial) << threads << " threads";
    }
}

TEST_F(ParallelWalk, SameResultsUnderEveryOption) {
    std::vector<WalkOptions> variants;
    for (unsigned depth : {0U, 1U, 2U, 3U, 4U, 5U, 8U, 30U}) {
        WalkOptions o;
        o.max_depth = depth;
        variants.push_back(o);
    }
    WalkOptions no_prune;
    no_prune.prune.clear();
    variants.push_back(no_prune);
    WalkOptions custom;
    custom.prune = {"src", ".runtime", "d"};
    variants.push_back(custom);
    WalkOptions crossing;
    crossing.one_file_system = false;
    variants.push_back(crossing);

    std::set<std::string> distinct;
    for (std::size_t i = 0; i < variants.size(); ++i) {
        WalkOptions serial_options = variants[i];
        serial_options.threads = 1;
        const std::string serial = outcome(m_root, serial_options);
        distinct.insert(serial);
        WalkOptions parallel_options = variants[i];
        parallel_options.threads = 3;
        EXPECT_EQ(outcome(m_root, parallel_options), serial) << "variant " << i;
    }
    // The options do change what is found (the comparison is not between empty walks).
    EXPECT_GE(distinct.size(), 8U);
}

TEST_F(ParallelWalk, ZeroThreadsMeansTheDefault) {
    const unsigned n = default_walk_threads();
    EXPECT_GE(n, 1U);
    EXPECT_LE(n, k_default_walk_threads_max);
    EXPECT_LE(n, std::max(1U, std::thread::hardware_concurrency()));
    WalkOptions options;
    options.threads = 0;
    EXPECT_EQ(outcome(m_root, options), outcome(m_root, {}));
    EXPECT_EQ(WalkOptions{}.threads, 1U); // the serial walk stays the default
}

TEST_F(ParallelWalk, VisitsAreSerializedAndWorkIsShared) {
    WalkOptions options;
    options.threads = 4;
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::set<std::thread::id> threads; // touched only inside the visitor: serialized
    int calls = 0;
    auto r = walk_locks(m_root, options, [&](const LockSite&) {
        if (inside.fetch_add(1) != 0) {
            ++overlaps;
        }
        threads.insert(std::this_thread::get_id());
        ++calls;
        // A slow visitor (as a real judge with I/O can be) leaves the other walkers time to
        // take work; this is not a wait for anything.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        inside.fetch_sub(1);
    });
    ASSERT_TRUE(r.ok());
    EXPECT_GT(calls, 100);
    EXPECT_EQ(overlaps.load(), 0);
    EXPECT_GE(threads.size(), 2U) << "no other thread ever found a lock";
}

TEST_F(ParallelWalk, SerialWalkVisitsOnTheCallersThread) {
    std::set<std::thread::id> threads;
    auto r = walk_locks(m_root, {},
                        [&](const LockSite&) { threads.insert(std::this_thread::get_id()); });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST_F(ParallelWalk, VisitorExceptionStopsTheWalkAndIsRethrown) {
    const int before = count_open_fds();
    WalkOptions options;
    options.threads = 4;
    std::atomic<int> calls{0};
    EXPECT_THROW(walk_locks(m_root, options,
                            [&](const LockSite&) {
                                if (++calls == 5) {
                                    throw std::runtime_error("visitor failed");
                                }
                            }),
                 std::runtime_error);
    EXPECT_GE(calls.load(), 5);
    EXPECT_EQ(count_open_fds(), before); // every walker's fds and queued frames closed
}

TEST(ParallelWalkRoot, RootErrorsAreTheSerialWalksErrors) {
    TempDir tmp;
    write_file(tmp.sub("file"), "x");
    WalkOptions options;
    options.threads = 4;
    for (const std::string& root : {tmp.sub("missing"), tmp.sub("file")}) {
        auto serial = walk_locks(root, {}, [](const LockSite&) {});
        auto parallel = walk_locks(root, options, [](const LockSite&) {});
        ASSERT_FALSE(serial.ok());
        ASSERT_FALSE(parallel.ok());
        EXPECT_EQ(parallel.error().message, serial.error().message);
        EXPECT_EQ(parallel.error().code, serial.error().code);
        EXPECT_EQ(parallel.error().path, root);
    }
}

TEST(ParallelWalkRoot, EmptyRootAndRootWithOneLock) {
    TempDir tmp;
    WalkOptions options;
    options.threads = 4;
    EXPECT_EQ(outcome(tmp.path(), options), "dirs\t1\nunreadable\t0\nsymlinked\t0\n");
    add_lock(tmp.sub("w"));
    EXPECT_EQ(outcome(tmp.path(), options), outcome(tmp.path(), {}));
    EXPECT_NE(outcome(tmp.path(), options).find("site\t" + tmp.sub("w") + "\n"), std::string::npos);
}

TEST(ParallelWalkFds, DeepWideTreeKeepsFdsBounded) {
    // Side branches at every level of a 300-level chain: walkers hand frames to each other
    // deep in the tree and re-open evicted frames by name from their bottom frame.
    TempDir tmp;
    const std::string root = tmp.path();
    std::string dir = root;
    for (int i = 0; i < 300; ++i) {
        dir += "/d";
        add_lock(dir + "/side" + std::to_string(i));
        add_lock(dir + "/zside" + std::to_string(i) + "/x");
    }
    add_lock(dir);
    const std::string serial = outcome(root, {});
    constexpr unsigned k_threads = 4;
    // held_fds_per_walker(4) = 8: each walker holds at most 8 + its bottom frame + one being
    // opened + a dup being given away; at most 3 frames (one per waiting walker) wait in the
    // queue with one fd each, and at most 16 sites wait for the visitor with a dup each.
    constexpr int k_bound = static_cast<int>(k_threads) * (8 + 3) + 3 + 16;
    const int before = count_open_fds();
    std::atomic<int> max_during{0};
    std::vector<std::string> found;
    WalkOptions options;
    options.threads = k_threads;
    for (int run = 0; run < 3; ++run) {
        auto r = walk_locks(root, options, [&](const LockSite& site) {
            const int now = count_open_fds();
            int seen = max_during.load();
            while (now > seen && !max_during.compare_exchange_weak(seen, now)) {
            }
            found.push_back(site.worker);
        });
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->unreadable_dirs, 0U);
        // root + chain + bottom .runtime + per level: side, side/.runtime, zside, x, x/.runtime
        EXPECT_EQ(r->dirs, 1U + 300U + 1U + 5U * 300U);
    }
    EXPECT_EQ(found.size(), 3U * 601U);
    EXPECT_GT(max_during.load(), before);
    EXPECT_LE(max_during.load(), before + k_bound);
    EXPECT_EQ(count_open_fds(), before);
    EXPECT_EQ(outcome(root, options), serial);
}

// ---- Mounts ----

TEST(ParallelWalkMounts, OneFileSystemAsTheSerialWalk) {
    TempDir tmp;
    const std::string root = tmp.path();
    for (int i = 0; i < 20; ++i) {
        add_lock(root + "/here" + std::to_string(i) + "/w");
    }
    TmpfsMount mnt(root + "/here7/mnt");
    if (!mnt.error().empty()) {
        GTEST_SKIP() << "cannot mount a tmpfs here: " << mnt.error();
    }
    add_lock(root + "/here7/mnt/there");
    add_lock(root + "/here7/mnt");

    WalkOptions options;
    options.threads = 4;
    const std::string serial = outcome(root, {});
    EXPECT_EQ(serial.find("/mnt"), std::string::npos) << serial;
    EXPECT_EQ(outcome(root, options), serial);

    WalkOptions crossing;
    crossing.one_file_system = false;
    const std::string serial_crossing = outcome(root, crossing);
    EXPECT_NE(serial_crossing.find("site\t" + root + "/here7/mnt/there\n"), std::string::npos);
    crossing.threads = 4;
    EXPECT_EQ(outcome(root, crossing), serial_crossing);
}

} // namespace
} // namespace agentlock
