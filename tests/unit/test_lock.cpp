// The agent-side Lock API against the real system: each behaviour of the Go package it replaces,
// and the mistakes it must not repeat: two acquirers both winning, torn writes, zombies and
// reused PIDs taken for owners, another host's lock judged by a local PID, a symlinked .runtime
// followed, unparseable locks overwritten, and a dead owner's lock taken over while its tmux
// session lives.
#include "test_support.hpp"

#include <agentlock/lock.hpp>
#include <agentlock/lock_file.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::TempDir;

class LockTest : public ::testing::Test {
protected:
    std::string worker() const { return m_dir.sub("worker"); }
    std::string lock_file() const { return worker() + "/.runtime/agent.lock"; }
    void put_lock(long long pid, const std::string& session = "", const std::string& host = "",
                  std::chrono::seconds age = 0s) {
        test::write_file(lock_file(),
                         test::go_lock_json(pid, test::now_rfc3339(-age), session,
                                            host.empty() ? test::local_hostname() : host));
    }
    Lock make_lock() {
        LockOptions o;
        o.tmux.socket_name = m_tmux.socket_name();
        return Lock(worker(), o);
    }
    TempDir m_dir;
    test::TmuxServerFixture m_tmux;
};

TEST_F(LockTest, AcquireOnAnUnlockedWorkerWritesOurLock) {
    auto lock = make_lock();
    ASSERT_TRUE(lock.acquire("sess-1")) << lock.acquire("sess-1").error().message;
    auto info = lock.read();
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_EQ(info->pid, ::getpid());
    EXPECT_EQ(info->session_id, "sess-1");
    EXPECT_EQ(info->hostname, test::local_hostname());
    EXPECT_TRUE(info->pid_start_ticks.has_value());
    EXPECT_EQ(info->pid_start_ticks, own_start_ticks());
    EXPECT_LE(info->acquired_at, std::chrono::system_clock::now());
    EXPECT_EQ(lock.status(), "locked (by us)");
}

// An agent inside tmux records its server from $TMUX, so a judge asks that server.
TEST_F(LockTest, AcquireRecordsTheAgentsTmuxServer) {
    LockOptions o;
    o.tmux.socket_name = m_tmux.socket_name();
    o.tmux_env = "/tmp/tmux-1000/gt-town-1a2b3c,4242,3";
    Lock lock(worker(), o);
    ASSERT_TRUE(lock.acquire("%3"));
    auto info = lock.read();
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_EQ(info->tmux_socket, "/tmp/tmux-1000/gt-town-1a2b3c");
    EXPECT_EQ(info->tmux_server_pid, 4242);
    // Outside tmux, or a value that is not tmux's: nothing recorded.
    for (const char* env : {"", "not-tmux"}) {
        o.tmux_env = env;
        Lock outside(worker(), o);
        ASSERT_TRUE(outside.acquire("%3"));
        auto again = outside.read();
        ASSERT_TRUE(again);
        EXPECT_FALSE(again->tmux_socket) << env;
        EXPECT_FALSE(again->tmux_server_pid) << env;
    }
}

// A lock recording its agent's server is judged by that server, whatever server is configured.
TEST_F(LockTest, ALockIsJudgedByTheServerItRecords) {
    test::TmuxServerFixture town;
    town.new_session("gt-w01");
    const std::string pane = town.pane_of("gt-w01");
    const std::string env =
        town.socket_path() + "," +
        std::to_string(std::stoll(town.tmux("display-message -p '#{pid}'").out)) + ",0";
    LockOptions agent;
    agent.tmux_env = env;
    agent.owner_pid = 0;
    {
        Child gt_prime = test::spawn_sleeper();
        agent.owner_pid = gt_prime.pid();
        ASSERT_TRUE(Lock(worker(), agent).acquire(pane));
    }                         // gt prime exits: the lock lives by its pane
    auto other = make_lock(); // configured: the fixture's server, where the pane does not exist
    Status s = other.acquire("%99");
    ASSERT_FALSE(s) << "took over a lock whose pane lives on its own server";
    EXPECT_EQ(s.error().kind, ErrorKind::locked);
    town.kill_server();
    ASSERT_TRUE(test::wait_until([&] { return static_cast<bool>(other.acquire("%99")); }))
        << "its server is gone: the lock is stale";
}

TEST_F(LockTest, AcquireWhenOursRefreshes) {
    auto lock = make_lock();
    ASSERT_TRUE(lock.acquire("a"));
    auto first = lock.read();
    ASSERT_TRUE(lock.acquire("b"));
    auto second = lock.read();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(second->session_id, "b");
    EXPECT_GE(second->acquired_at, first->acquired_at);
}

TEST_F(LockTest, AcquireTakesOverADeadOwnersLock) {
    put_lock(test::dead_pid());
    auto lock = make_lock();
    ASSERT_TRUE(lock.acquire("mine"));
    EXPECT_EQ(lock.read()->pid, ::getpid());
}

TEST_F(LockTest, AcquireFailsAgainstALiveOwnerNamingPidSessionAndTime) {
    Child other = test::spawn_sleeper();
    put_lock(other.pid(), "their-session");
    auto lock = make_lock();
    Status s = lock.acquire("mine");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::locked);
    const std::string& m = s.error().message;
    EXPECT_NE(m.find("worker is locked by another agent: PID " + std::to_string(other.pid())),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("session: their-session"), std::string::npos) << m;
    EXPECT_NE(m.find("acquired: 20"), std::string::npos) << m;
    EXPECT_EQ(lock.read()->pid, other.pid()) << "the live owner's lock was overwritten";
}

TEST_F(LockTest, AcquireTakesOverAZombiesLock) { // a zombie's owner is gone
    Child zombie = test::spawn_zombie();
    put_lock(zombie.pid());
    auto lock = make_lock();
    ASSERT_TRUE(lock.acquire("mine"));
    EXPECT_EQ(lock.read()->pid, ::getpid());
}

TEST_F(LockTest, AcquireTakesOverAReusedPid) { // the PID's process started later
    Child newcomer = test::spawn_sleeper();
    put_lock(newcomer.pid(), "", "", 3600s);
    auto lock = make_lock();
    ASSERT_TRUE(lock.acquire("mine")) << "a PID reused an hour after the lock still blocks";
}

TEST_F(LockTest, RecordedStartTicksDetectReuse) { // our own writer's fields
    Child other = test::spawn_sleeper();
    LockInfo info;
    info.pid = other.pid();
    info.acquired_at = *parse_rfc3339(test::now_rfc3339());
    info.hostname = test::local_hostname();
    info.pid_start_ticks = 1; // not the start of the process now holding that PID
    test::make_dirs(worker() + "/.runtime");
    test::write_file(lock_file(), serialize_lock(info));
    auto lock = make_lock();
    EXPECT_TRUE(lock.acquire("mine"));
}

TEST_F(LockTest, AnotherHostsLockIsNeverTakenOver) { // a local PID says nothing
    put_lock(test::dead_pid(), "", "some-other-host");
    auto lock = make_lock();
    Status s = lock.acquire("mine");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::locked);
    EXPECT_NE(s.error().message.find("foreign"), std::string::npos) << s.error().message;
    EXPECT_EQ(lock.read()->hostname, "some-other-host");
}

TEST_F(LockTest, DeadOwnerWithLiveSessionIsNotTakenOver) { // one careful rule
    m_tmux.new_session("held");
    put_lock(test::dead_pid(), "held");
    auto lock = make_lock();
    Status s = lock.acquire("someone-else");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::locked);
    EXPECT_FALSE(lock.check()) << "check must not call it stale either";
    EXPECT_TRUE(test::exists(lock_file())) << "check removed a lock whose session lives";
    EXPECT_EQ(lock.status(),
              "locked by PID " + std::to_string(lock.read()->pid) + " (session: held)");
}

TEST_F(LockTest, TheSameSessionReclaimsItsIdentity) { // the careful rule's one exception
    m_tmux.new_session("mine");
    put_lock(test::dead_pid(), "mine");
    auto lock = make_lock();
    ASSERT_TRUE(lock.acquire("mine"));
    EXPECT_EQ(lock.read()->pid, ::getpid());
}

TEST_F(LockTest, DeadOwnerWithUnreachableTmuxIsNotTakenOver) { // unknown is not "no sessions"
    put_lock(test::dead_pid(), "sess");
    LockOptions o;
    o.tmux.socket_path = m_dir.sub("not-a-socket");
    test::write_file(o.tmux.socket_path, "plain file");
    Lock lock(worker(), o);
    Status s = lock.acquire("other");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::locked);
    EXPECT_TRUE(test::exists(lock_file()));
}

TEST_F(LockTest, AnInvalidLockIsNeverOverwrittenOrRemoved) { // it may be mid-write
    test::write_file(lock_file(), "{\"pid\": 12");
    auto lock = make_lock();
    Status s = lock.acquire("mine");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::invalid_lock);
    EXPECT_FALSE(lock.check());
    EXPECT_EQ(lock.check().error().kind, ErrorKind::invalid_lock);
    EXPECT_EQ(test::read_file(lock_file()), "{\"pid\": 12");
    EXPECT_EQ(lock.status().rfind("error: ", 0), 0u) << lock.status();
}

TEST_F(LockTest, ReadTellsNotLockedInvalidAndIoErrorsApart) {
    auto lock = make_lock();
    EXPECT_EQ(lock.read().error().kind, ErrorKind::not_locked);
    test::make_dirs(worker() + "/.runtime");
    EXPECT_EQ(lock.read().error().kind, ErrorKind::not_locked);
    test::write_file(lock_file(), "nonsense");
    EXPECT_EQ(lock.read().error().kind, ErrorKind::invalid_lock);
    EXPECT_EQ(lock.status().rfind("error: invalid lock file", 0), 0u) << lock.status();

    // A worker path that is a regular file: an I/O error naming the path and errno text.
    test::write_file(m_dir.sub("file"), "x");
    Lock bad(m_dir.sub("file"));
    auto r = bad.read();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::io);
    EXPECT_NE(r.error().message.find(m_dir.sub("file")), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("Not a directory"), std::string::npos) << r.error().message;
    EXPECT_FALSE(bad.acquire("x"));
}

TEST_F(LockTest, ReleaseRemovesOurLockAndToleratesNone) {
    auto lock = make_lock();
    EXPECT_TRUE(lock.release()) << "releasing an unlocked worker is fine";
    ASSERT_TRUE(lock.acquire("s"));
    ASSERT_TRUE(lock.release());
    EXPECT_FALSE(test::exists(lock_file()));
    EXPECT_EQ(lock.status(), "unlocked");
}

TEST_F(LockTest, ReleaseRefusesAnotherAgentsLockButForceReleaseRemovesIt) {
    Child other = test::spawn_sleeper();
    put_lock(other.pid(), "theirs");
    auto lock = make_lock();
    Status s = lock.release();
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::locked);
    EXPECT_TRUE(test::exists(lock_file()));
    ASSERT_TRUE(lock.force_release());
    EXPECT_FALSE(test::exists(lock_file()));
    EXPECT_TRUE(lock.force_release()) << "force-releasing nothing is fine";
}

TEST_F(LockTest, CheckCoversUnlockedOursStaleAndLocked) {
    auto lock = make_lock();
    EXPECT_TRUE(lock.check());
    ASSERT_TRUE(lock.acquire("s"));
    EXPECT_TRUE(lock.check());

    put_lock(test::dead_pid());
    EXPECT_TRUE(lock.check());
    EXPECT_FALSE(test::exists(lock_file())) << "check removes a stale lock";

    Child other = test::spawn_sleeper();
    put_lock(other.pid(), "x");
    m_tmux.new_session("x");
    Status s = lock.check();
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::locked);
    EXPECT_EQ(s.error().message, "worker is locked by another agent: PID " +
                                     std::to_string(other.pid()) + " (session: x)");
}

TEST_F(LockTest, StatusStringsAreTheSeeds) {
    auto lock = make_lock();
    EXPECT_EQ(lock.status(), "unlocked");
    pid_t dead = test::dead_pid();
    put_lock(dead);
    EXPECT_EQ(lock.status(), "stale (dead PID " + std::to_string(dead) + ")");
    EXPECT_TRUE(test::exists(lock_file())) << "status must not remove anything";
    Child other = test::spawn_sleeper();
    put_lock(other.pid(), "s9");
    EXPECT_EQ(lock.status(), "locked by PID " + std::to_string(other.pid()) + " (session: s9)");
}

TEST_F(LockTest, ASymlinkedRuntimeIsNotFollowed) {
    std::string outside = m_dir.sub("outside");
    test::write_file(outside + "/agent.lock",
                     test::go_lock_json(test::dead_pid(), test::now_rfc3339()));
    test::make_dirs(worker());
    ASSERT_EQ(::symlink(outside.c_str(), (worker() + "/.runtime").c_str()), 0);
    auto lock = make_lock();
    EXPECT_FALSE(lock.acquire("s"));
    EXPECT_FALSE(lock.check());
    EXPECT_TRUE(lock.force_release().ok() == false);
    EXPECT_TRUE(test::exists(outside + "/agent.lock"));
    EXPECT_FALSE(test::exists(outside + "/agent.lock.flock"));
}

// Two acquirers can never both win (a read-then-write acquire would let them). Every child stays
// alive until all have tried, so a loser cannot legitimately take over a dead winner's lock.
TEST_F(LockTest, ConcurrentAcquirersHaveExactlyOneWinner) {
    constexpr int k_rounds = 10;
    constexpr int k_children = 8;
    for (int round = 0; round < k_rounds; ++round) {
        std::string w = m_dir.sub("race" + std::to_string(round));
        test::make_dirs(w);
        int go[2];
        int tried[2];
        int hold[2];
        ASSERT_EQ(::pipe(go), 0);
        ASSERT_EQ(::pipe(tried), 0);
        ASSERT_EQ(::pipe(hold), 0);
        std::vector<pid_t> kids;
        for (int i = 0; i < k_children; ++i) {
            pid_t pid = ::fork();
            ASSERT_GE(pid, 0);
            if (pid == 0) {
                ::close(go[1]);
                ::close(tried[0]);
                ::close(hold[1]);
                char c = 0;
                (void)!::read(go[0], &c, 1); // EOF: the start signal
                Lock l(w);
                const bool won = l.acquire("child-" + std::to_string(i)).ok();
                (void)!::write(tried[1], &c, 1);
                (void)!::read(hold[0], &c, 1); // stay alive until every child has tried
                ::_exit(won ? 0 : 1);
            }
            kids.push_back(pid);
        }
        ::close(go[0]);
        ::close(tried[1]);
        ::close(hold[0]);
        ::close(go[1]); // EOF releases every child at once
        int reported = 0;
        char buf[k_children];
        while (reported < k_children) {
            ssize_t n = ::read(tried[0], buf, sizeof buf);
            ASSERT_GT(n, 0);
            reported += static_cast<int>(n);
        }
        ::close(tried[0]);
        ::close(hold[1]);
        int winners = 0;
        for (pid_t k : kids) {
            int st = 0;
            ASSERT_EQ(::waitpid(k, &st, 0), k);
            ASSERT_TRUE(WIFEXITED(st));
            winners += WEXITSTATUS(st) == 0 ? 1 : 0;
        }
        EXPECT_GE(winners, 1) << "round " << round;
        EXPECT_EQ(winners, 1) << "round " << round << ": two agents both acquired " << w;
    }
}

// Go and C++ agents coordinate on the same sidecar flock.
TEST_F(LockTest, AcquireWaitsForTheSidecarFlock) {
    test::make_dirs(worker() + "/.runtime");
    int fd = ::open((lock_file() + ".flock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0);
    std::atomic<bool> done{false};
    std::thread t([&] {
        auto lock = make_lock();
        EXPECT_TRUE(lock.acquire("s"));
        done = true;
    });
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(done.load()) << "acquire went ahead while another agent held the flock";
    EXPECT_FALSE(test::exists(lock_file()));
    ::flock(fd, LOCK_UN);
    ::close(fd);
    t.join();
    EXPECT_TRUE(done.load());
    EXPECT_TRUE(test::exists(lock_file()));
}

} // namespace
} // namespace agentlock
