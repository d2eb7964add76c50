// Tests for remove_if_unchanged: removal through the .runtime fd after the sidecar flock, the
// re-read, the compare and the re-judge, on real files and with a real process holding the
// flock. A lock re-acquired meanwhile survives, nothing is reached through a symlink, an
// unparseable lock is never removed, and the reaper creates nothing in a worker tree.
#include <agentlock/fd.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/reaper.hpp>
#include <agentlock/tmux_probe.hpp>
#include <agentlock/tree_walk.hpp>
#include <agentlock/verdict.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace agentlock {
namespace {

namespace fs = std::filesystem;
using test::Child;
using test::exists;
using test::read_file;
using test::TempDir;
using test::write_file;

const Judgement k_stale{Verdict::stale, "owner PID is dead and no session is recorded"};

Fd open_dir(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid()) << "open " << path << ": " << std::strerror(errno);
    return fd;
}

std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) {
        names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

// Replaces `path` atomically with a new file holding `content` (a new inode).
void replace_file(const std::string& path, const std::string& content) {
    write_file(path + ".tmp", content);
    fs::rename(path + ".tmp", path);
}

class ReaperTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_bytes = test::go_lock_json(test::dead_pid(), "2024-05-01T10:00:00.123456789Z");
        write_file(lock(), m_bytes);
        m_runtime = open_dir(runtime());
    }

    std::string worker() const { return m_tmp.sub("worker"); }
    std::string runtime() const { return worker() + "/.runtime"; }
    std::string lock() const { return runtime() + "/agent.lock"; }
    std::string sidecar() const { return runtime() + "/agent.lock.flock"; }

    // A rejudge that returns `verdict` and counts its calls.
    Rejudge judging(Judgement verdict) {
        return [this, verdict](const LockInfo& info) {
            ++m_rejudged;
            m_rejudged_info = info;
            return verdict;
        };
    }

    RemovalResult remove(const Rejudge& rejudge, bool dry_run = false) {
        return remove_if_unchanged(m_runtime.get(), lock(), m_bytes, rejudge, dry_run);
    }

    TempDir m_tmp;
    std::string m_bytes;
    Fd m_runtime;
    int m_rejudged = 0;
    LockInfo m_rejudged_info;
};

TEST(RemovalAction, Names) {
    EXPECT_EQ(to_string(RemovalAction::removed), "removed");
    EXPECT_EQ(to_string(RemovalAction::would_remove), "would-remove");
    EXPECT_EQ(to_string(RemovalAction::skipped_changed), "skipped-changed");
    EXPECT_EQ(to_string(RemovalAction::failed), "failed");
}

TEST_F(ReaperTest, RemovesAStaleLockAndReturnsItsFullContent) {
    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::removed) << r.detail;
    EXPECT_EQ(r.content, m_bytes);
    EXPECT_EQ(r.detail, k_stale.reason);
    EXPECT_FALSE(exists(lock()));
    EXPECT_TRUE(fs::is_directory(runtime())); // only the file goes
    EXPECT_EQ(m_rejudged, 1);
    EXPECT_EQ(m_rejudged_info, *parse_lock(m_bytes));
}

TEST_F(ReaperTest, DryRunRemovesNothing) {
    auto r = remove(judging(k_stale), /*dry_run=*/true);
    EXPECT_EQ(r.action, RemovalAction::would_remove) << r.detail;
    EXPECT_EQ(r.content, m_bytes);
    EXPECT_EQ(read_file(lock()), m_bytes);
    EXPECT_EQ(m_rejudged, 1);
}

TEST_F(ReaperTest, NeverCreatesTheSidecar) { // a root-owned one would lock agents out
    ASSERT_FALSE(exists(sidecar()));
    const auto before = list_dir(runtime());
    auto dry = remove(judging(k_stale), /*dry_run=*/true);
    EXPECT_EQ(dry.action, RemovalAction::would_remove);
    EXPECT_EQ(list_dir(runtime()), before);
    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::removed);
    EXPECT_FALSE(exists(sidecar()));
    EXPECT_TRUE(list_dir(runtime()).empty());
}

// A real process holding the sidecar flock, as an acquiring agent does.
Child hold_flock(const std::string& path) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe: " << std::strerror(errno);
        return Child();
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(ready[0]);
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || ::flock(fd, LOCK_EX) != 0 || ::write(ready[1], "x", 1) != 1) {
            ::_exit(1);
        }
        for (;;) {
            ::pause();
        }
    }
    ::close(ready[1]);
    Child child(pid);
    char c = 0;
    const ssize_t n = ::read(ready[0], &c, 1); // EOF if the child failed
    ::close(ready[0]);
    EXPECT_EQ(n, 1) << "the child could not take the flock";
    return child;
}

TEST_F(ReaperTest, SidecarFlockHeldByAnotherProcessSkips) {
    write_file(sidecar(), "");
    Child holder = hold_flock(sidecar());
    ASSERT_GT(holder.pid(), 0);

    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::skipped_changed);
    EXPECT_EQ(r.detail, "lock is being acquired (flock held on " + sidecar() + ")");
    EXPECT_EQ(read_file(lock()), m_bytes);
    EXPECT_EQ(m_rejudged, 0);

    // Once the holder is gone the same call removes it: the flock was the only reason.
    holder.kill_and_reap();
    auto again = remove(judging(k_stale));
    EXPECT_EQ(again.action, RemovalAction::removed) << again.detail;
    EXPECT_FALSE(exists(lock()));
    EXPECT_TRUE(exists(sidecar())); // the sidecar is never removed
}

TEST_F(ReaperTest, HoldsTheSidecarFlockFromReReadToUnlink) {
    write_file(sidecar(), "");
    struct stat before {};
    ASSERT_EQ(::stat(sidecar().c_str(), &before), 0);
    int contended = 0;
    auto r = remove([&](const LockInfo&) {
        // An acquirer arriving now must wait: the reaper holds the flock.
        Fd other(::open(sidecar().c_str(), O_RDWR | O_CLOEXEC));
        EXPECT_TRUE(other.valid());
        if (::flock(other.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
            ++contended;
        }
        return k_stale;
    });
    EXPECT_EQ(r.action, RemovalAction::removed) << r.detail;
    EXPECT_EQ(contended, 1);
    // Released afterwards, and left in place.
    Fd after(::open(sidecar().c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(after.valid());
    EXPECT_EQ(::flock(after.get(), LOCK_EX | LOCK_NB), 0);
    struct stat after_st {};
    ASSERT_EQ(::stat(sidecar().c_str(), &after_st), 0);
    EXPECT_EQ(after_st.st_ino, before.st_ino);
}

TEST_F(ReaperTest, SymlinkedSidecarIsNotFollowedAndKeepsTheLock) {
    const std::string outside = m_tmp.sub("outside-flock");
    write_file(outside, "");
    fs::create_symlink(outside, sidecar());
    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::failed);
    EXPECT_NE(r.detail.find("open " + sidecar() + ": "), std::string::npos) << r.detail;
    EXPECT_EQ(read_file(lock()), m_bytes);
    EXPECT_EQ(m_rejudged, 0);
}

TEST_F(ReaperTest, ContentChangedSinceJudgedSkips) {
    const std::string renewed =
        test::go_lock_json(::getpid(), "2024-05-01T10:05:00Z", "new-session");
    write_file(lock(), renewed);
    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::skipped_changed);
    EXPECT_EQ(r.detail, "lock changed since it was judged");
    EXPECT_EQ(r.content, renewed);
    EXPECT_EQ(read_file(lock()), renewed);
    EXPECT_EQ(m_rejudged, 0);
}

TEST_F(ReaperTest, LockReplacedWhileBeingReJudgedIsKept) {
    // Same bytes, new file: an acquirer that skipped the flock re-wrote it meanwhile.
    auto r = remove([&](const LockInfo&) {
        replace_file(lock(), m_bytes);
        return k_stale;
    });
    EXPECT_EQ(r.action, RemovalAction::skipped_changed);
    EXPECT_EQ(r.detail, "lock changed since it was judged");
    EXPECT_TRUE(exists(lock()));
}

TEST_F(ReaperTest, LockRemovedWhileBeingReJudgedIsGone) {
    auto r = remove([&](const LockInfo&) {
        fs::remove(lock());
        return k_stale;
    });
    EXPECT_EQ(r.action, RemovalAction::skipped_changed);
    EXPECT_EQ(r.detail, "lock is gone");
}

TEST_F(ReaperTest, LockAlreadyGoneSkips) {
    fs::remove(lock());
    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::skipped_changed);
    EXPECT_EQ(r.detail, "lock is gone");
    EXPECT_EQ(m_rejudged, 0);
    EXPECT_FALSE(exists(lock()));
}

TEST_F(ReaperTest, EveryVerdictButStaleKeepsTheLock) { // the cardinal rule
    for (Verdict v : {Verdict::live, Verdict::held_by_session, Verdict::orphaned, Verdict::foreign,
                      Verdict::invalid, Verdict::unknown}) {
        const Judgement j{v, "because"};
        for (bool dry_run : {false, true}) {
            auto r = remove(judging(j), dry_run);
            EXPECT_EQ(r.action, RemovalAction::skipped_changed) << to_string(v);
            EXPECT_EQ(r.detail, "no longer stale (" + std::string(to_string(v)) + "): because");
            EXPECT_EQ(read_file(lock()), m_bytes);
        }
    }
}

TEST_F(ReaperTest, ReJudgedLiveByTheRealProbeIsKept) {
    // Judged stale earlier; by the re-check the PID belongs to a live agent that started
    // before acquired_at: the real judge says live and the lock stays.
    Child agent = test::spawn_sleeper();
    LockInfo info;
    info.pid = agent.pid();
    info.acquired_at =
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
    info.hostname = test::local_hostname();
    m_bytes = serialize_lock(info);
    write_file(lock(), m_bytes);

    SystemProcessProbe processes;
    TmuxFacts tmux;
    tmux.state = TmuxState::no_server;
    const HostFacts host = read_host_facts();
    auto r = remove([&](const LockInfo& again) {
        return judge_lock(again, processes.probe(again.pid), tmux, host);
    });
    EXPECT_EQ(r.action, RemovalAction::skipped_changed);
    EXPECT_NE(r.detail.find("no longer stale (live)"), std::string::npos) << r.detail;
    EXPECT_EQ(read_file(lock()), m_bytes);

    // And once that agent is dead, the same real re-check lets it go.
    agent.kill_and_reap();
    auto gone = remove([&](const LockInfo& again) {
        return judge_lock(again, processes.probe(again.pid), tmux, host);
    });
    EXPECT_EQ(gone.action, RemovalAction::removed) << gone.detail;
    EXPECT_FALSE(exists(lock()));
}

TEST_F(ReaperTest, UnparseableLockIsNeverRemoved) { // it may be mid-write
    write_file(lock(), "{\"pid\": 12");
    auto r = remove_if_unchanged(m_runtime.get(), lock(), "{\"pid\": 12", judging(k_stale), false);
    EXPECT_EQ(r.action, RemovalAction::skipped_changed);
    EXPECT_EQ(read_file(lock()), "{\"pid\": 12");
    EXPECT_EQ(m_rejudged, 0);
}

TEST_F(ReaperTest, LockThatIsASymlinkIsNeverFollowedOrRemoved) {
    const std::string outside = m_tmp.sub("outside.lock");
    write_file(outside, m_bytes);
    fs::remove(lock());
    fs::create_symlink(outside, lock());
    auto r = remove(judging(k_stale));
    EXPECT_NE(r.action, RemovalAction::removed);
    EXPECT_NE(r.action, RemovalAction::would_remove);
    EXPECT_TRUE(fs::is_symlink(lock()));
    EXPECT_EQ(read_file(outside), m_bytes);
    EXPECT_EQ(m_rejudged, 0);
}

TEST_F(ReaperTest, RemovesThroughTheFdNotThePath) {
    // The worker moves after the walk opened its .runtime, and a new lock appears at the old
    // path: the reaper removes the file it was pointed at and leaves the old path alone.
    fs::rename(worker(), m_tmp.sub("moved"));
    write_file(lock(), m_bytes);
    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::removed) << r.detail;
    EXPECT_FALSE(exists(m_tmp.sub("moved/.runtime/agent.lock")));
    EXPECT_EQ(read_file(lock()), m_bytes);
}

TEST_F(ReaperTest, RuntimeSwappedForASymlinkAfterOpeningIsNotFollowed) {
    const std::string outside = m_tmp.sub("outside/.runtime");
    write_file(outside + "/agent.lock", m_bytes);
    fs::rename(runtime(), worker() + "/.runtime-old");
    fs::create_symlink(outside, runtime());
    auto r = remove(judging(k_stale));
    EXPECT_EQ(r.action, RemovalAction::removed) << r.detail;
    EXPECT_EQ(read_file(outside + "/agent.lock"), m_bytes);
    EXPECT_FALSE(exists(worker() + "/.runtime-old/agent.lock"));
}

// The walk and the reaper together, as the cleaner runs them over a tree with a trap.
TEST(ReaperWithWalk, SymlinkedRuntimeOutsideTheTreeIsNeverTouched) {
    TempDir tmp;
    const std::string root = tmp.sub("root");
    const std::string stale = test::go_lock_json(test::dead_pid(), "2024-05-01T10:00:00Z");
    const std::string outside_lock = tmp.sub("outside/.runtime/agent.lock");
    write_file(outside_lock, stale);
    test::make_dirs(root + "/trap");
    fs::create_symlink(tmp.sub("outside/.runtime"), root + "/trap/.runtime");
    write_file(root + "/real/.runtime/agent.lock", stale);

    int visited = 0;
    std::vector<RemovalResult> removals;
    auto walked = walk_locks(root, {}, [&](const LockSite& site) {
        ++visited;
        LockRead read = read_lock_at(site.runtime_fd, site.lock_path);
        ASSERT_EQ(read.state, LockRead::State::ok) << read.message;
        removals.push_back(remove_if_unchanged(
            site.runtime_fd, site.lock_path, read.bytes, [](const LockInfo&) { return k_stale; },
            false));
    });
    ASSERT_TRUE(walked.ok()) << walked.error().message;
    EXPECT_EQ(visited, 1);
    ASSERT_EQ(removals.size(), 1U);
    EXPECT_EQ(removals[0].action, RemovalAction::removed);
    EXPECT_EQ(removals[0].content, stale);
    EXPECT_FALSE(exists(root + "/real/.runtime/agent.lock"));
    EXPECT_EQ(read_file(outside_lock), stale); // same bytes as before: untouched
}

} // namespace
} // namespace agentlock
