// check_worker: the event-driven re-check of one worker judges and removes exactly as a full pass
// does, reaches the lock from its root without following symlinks, looks only where a pass
// looks, and asks tmux only when the lock records a session.
#include "fakes.hpp"
#include "test_support.hpp"

#include <agentlock/pass.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sys/mount.h>
#include <unistd.h>

namespace agentlock {
namespace {

using test::Child;
using test::TempDir;
using State = WorkerCheck::State;

class CheckWorkerTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_host = read_host_facts();
        m_options.roots = {root()};
    }
    std::string root() const { return m_dir.sub("root"); }
    std::string worker(const std::string& rel) const { return root() + "/" + rel; }
    std::string lock_of(const std::string& rel) const {
        return worker(rel) + "/.runtime/agent.lock";
    }
    void put(const std::string& rel, long long pid, const std::string& session = "",
             const std::string& host = "") {
        test::write_file(lock_of(rel),
                         test::go_lock_json(pid, test::now_rfc3339(), session,
                                            host.empty() ? test::local_hostname() : host));
    }
    WorkerCheck check(const std::string& path, const TmuxFacts* fresh = nullptr) {
        SystemProcessProbe processes;
        return check_worker(path, m_options, processes, m_tmux, m_host, fresh);
    }

    TempDir m_dir;
    PassOptions m_options;
    HostFacts m_host;
    test::FakeTmuxProbe m_tmux;
};

TEST_F(CheckWorkerTest, RemovesAStaleLockWithTheFullEvidenceAndNoTmuxQuery) {
    put("rig/w1", test::dead_pid());
    const std::string content = test::read_file(lock_of("rig/w1"));
    WorkerCheck c = check(worker("rig/w1"));
    ASSERT_EQ(c.state, State::found) << c.error;
    EXPECT_EQ(c.root, root());
    EXPECT_EQ(c.worker, worker("rig/w1"));
    EXPECT_EQ(c.lock_path, lock_of("rig/w1"));
    EXPECT_EQ(c.record.lock_path, lock_of("rig/w1"));
    EXPECT_EQ(c.record.judgement.verdict, Verdict::stale) << c.record.judgement.reason;
    EXPECT_EQ(c.record.action, LockAction::removed) << c.record.detail;
    EXPECT_EQ(c.record.content, content);
    EXPECT_EQ(c.record.process.state, ProcessState::dead);
    EXPECT_FALSE(test::exists(lock_of("rig/w1")));
    EXPECT_EQ(m_tmux.calls, 0) << "no session recorded: tmux is not asked";
    EXPECT_FALSE(c.tmux.has_value());
}

TEST_F(CheckWorkerTest, KeepsALiveLock) {
    Child owner = test::spawn_sleeper();
    put("w1", owner.pid());
    WorkerCheck c = check(worker("w1"));
    ASSERT_EQ(c.state, State::found) << c.error;
    EXPECT_EQ(c.record.judgement.verdict, Verdict::live) << c.record.judgement.reason;
    EXPECT_EQ(c.record.action, LockAction::kept);
    ASSERT_TRUE(c.record.process.start_ticks.has_value()) << "evidence for the pidfd re-verify";
    EXPECT_TRUE(test::exists(lock_of("w1")));
}

TEST_F(CheckWorkerTest, AsksTmuxOnceForALockThatRecordsASession) {
    put("w1", test::dead_pid(), "agent-x");
    m_tmux.facts = test::tmux_ok({"agent-x"});
    WorkerCheck c = check(worker("w1"));
    ASSERT_EQ(c.state, State::found);
    EXPECT_EQ(c.record.judgement.verdict, Verdict::held_by_session);
    EXPECT_EQ(c.record.action, LockAction::kept);
    EXPECT_EQ(m_tmux.calls, 1);
    ASSERT_TRUE(c.tmux.has_value());
    EXPECT_EQ(c.tmux->state, TmuxState::ok);
    EXPECT_TRUE(test::exists(lock_of("w1")));
}

TEST_F(CheckWorkerTest, AFreshAnswerIsUsedButTmuxIsAskedAgainBeforeRemoving) {
    // The re-poll says the session is gone; by the time the reaper re-checks, it is back. The
    // lock stays: an event never removes on its own say-so.
    put("w1", test::dead_pid(), "agent-x");
    TmuxFacts fresh = test::tmux_ok({"other"});
    m_tmux.facts = test::tmux_ok({"agent-x"});
    WorkerCheck c = check(worker("w1"), &fresh);
    ASSERT_EQ(c.state, State::found);
    EXPECT_EQ(c.record.judgement.verdict, Verdict::stale);
    EXPECT_EQ(c.record.action, LockAction::skipped_changed) << c.record.detail;
    EXPECT_EQ(m_tmux.calls, 1) << "only the reaper's re-check asked";
    EXPECT_TRUE(test::exists(lock_of("w1")));

    // Gone for real: removed.
    m_tmux.facts = test::tmux_ok({"other"});
    c = check(worker("w1"), &fresh);
    EXPECT_EQ(c.record.action, LockAction::removed) << c.record.detail;
    EXPECT_FALSE(test::exists(lock_of("w1")));
}

// A burst of removals freed by one answer (a killed session's panes, an exited server's locks)
// is confirmed by that answer, not by a query per lock, when nothing tmux creates after it could
// hold the lock: the answer began more than the slack (and a second) after acquired_at.
class FreshConfirmTest : public CheckWorkerTest {
protected:
    void put_aged(const std::string& rel, const std::string& session, std::chrono::seconds age) {
        test::write_file(lock_of(rel), test::go_lock_json(test::dead_pid(), test::now_rfc3339(-age),
                                                          session, test::local_hostname()));
    }
    static TmuxFacts asked_now(TmuxFacts f) {
        f.asked_at = std::chrono::time_point_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now());
        return f;
    }
};

TEST_F(FreshConfirmTest, AnAnswerWithoutTheSessionConfirmsTheRemovalOfAnOldEnoughLock) {
    put_aged("w1", "%7", std::chrono::seconds(120));
    const TmuxFacts fresh = asked_now(test::tmux_ok({"other"}, {}, {"%8"}));
    m_tmux.facts = test::tmux_ok({}, {}, {"%7"}); // what a new query would say: never asked
    WorkerCheck c = check(worker("w1"), &fresh);
    ASSERT_EQ(c.state, State::found);
    EXPECT_EQ(c.record.action, LockAction::removed) << c.record.detail;
    EXPECT_EQ(m_tmux.calls, 0);
    EXPECT_FALSE(test::exists(lock_of("w1")));
}

TEST_F(FreshConfirmTest, AnAnswerOfNoServerConfirmsToo) {
    put_aged("w1", "%7", std::chrono::seconds(120));
    const TmuxFacts fresh = asked_now(test::tmux_state(TmuxState::no_server));
    WorkerCheck c = check(worker("w1"), &fresh);
    EXPECT_EQ(c.record.action, LockAction::removed) << c.record.detail;
    EXPECT_EQ(m_tmux.calls, 0);
}

TEST_F(FreshConfirmTest, ALockYoungerThanTheSlackIsConfirmedByANewQuery) {
    // Its session may yet be created (a launcher writes the lock first): ask again.
    put_aged("w1", "agent-x", std::chrono::seconds(30));
    const TmuxFacts fresh = asked_now(test::tmux_ok({"other"}));
    m_tmux.facts = test::tmux_ok({"agent-x"});
    WorkerCheck c = check(worker("w1"), &fresh);
    EXPECT_EQ(c.record.action, LockAction::skipped_changed) << c.record.detail;
    EXPECT_EQ(m_tmux.calls, 1);
    EXPECT_TRUE(test::exists(lock_of("w1")));
}

TEST_F(FreshConfirmTest, AnAnswerThatStillListsTheSessionIsNotReused) {
    // Listed with every pane dead: a respawned pane could revive it, so only a new query tells.
    put_aged("w1", "agent-x", std::chrono::seconds(120));
    TmuxFacts dead = test::tmux_ok({"agent-x"});
    for (auto& [id, session] : dead.sessions) {
        session.dead_panes = session.panes;
    }
    const TmuxFacts fresh = asked_now(dead);
    m_tmux.facts = test::tmux_ok({"agent-x"});
    WorkerCheck c = check(worker("w1"), &fresh);
    EXPECT_EQ(c.record.judgement.verdict, Verdict::stale) << c.record.judgement.reason;
    EXPECT_EQ(c.record.action, LockAction::skipped_changed) << c.record.detail;
    EXPECT_EQ(m_tmux.calls, 1);
}

TEST_F(FreshConfirmTest, NotAfterAClockStepSinceTheLockWasWritten) {
    put_aged("w1", "%7", std::chrono::seconds(120));
    const TmuxFacts fresh = asked_now(test::tmux_ok({"other"}));
    m_options.clock.record(ClockStep{
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now()),
        std::chrono::seconds(-5)});
    m_tmux.facts = test::tmux_ok({}, {}, {"%7"});
    WorkerCheck c = check(worker("w1"), &fresh);
    EXPECT_EQ(c.record.action, LockAction::skipped_changed) << c.record.detail;
    EXPECT_EQ(m_tmux.calls, 1);
    EXPECT_TRUE(test::exists(lock_of("w1")));
}

TEST_F(CheckWorkerTest, UnknownTmuxNeverLeadsToRemoval) {
    put("w1", test::dead_pid(), "agent-x");
    m_tmux.facts = test::tmux_state(TmuxState::unknown, "permission denied");
    WorkerCheck c = check(worker("w1"));
    ASSERT_EQ(c.state, State::found);
    EXPECT_EQ(c.record.judgement.verdict, Verdict::unknown);
    EXPECT_TRUE(test::exists(lock_of("w1")));
}

TEST_F(CheckWorkerTest, NoLockIsAbsent) {
    test::make_dirs(worker("w1/.runtime"));
    test::make_dirs(worker("w2"));
    EXPECT_EQ(check(worker("w1")).state, State::absent);
    EXPECT_EQ(check(worker("w2")).state, State::absent);
    EXPECT_EQ(check(worker("never")).state, State::absent);
    test::make_dirs(root());
    EXPECT_EQ(check(root()).state, State::absent) << "the root's own .runtime is a lock site";
}

TEST_F(CheckWorkerTest, NeverFollowsASymlinkOnTheWay) {
    // The same stale lock reached through a symlinked directory and a symlinked .runtime: a pass
    // never finds it there, and a re-check must not remove it.
    TempDir outside;
    test::write_file(
        outside.sub("w/.runtime/agent.lock"),
        test::go_lock_json(test::dead_pid(), test::now_rfc3339(), "", test::local_hostname()));
    test::make_dirs(root());
    std::filesystem::create_directory_symlink(outside.path(), root() + "/link");
    test::make_dirs(worker("w2"));
    std::filesystem::create_directory_symlink(outside.sub("w/.runtime"),
                                              worker("w2") + "/.runtime");
    EXPECT_EQ(check(worker("link/w")).state, State::absent);
    EXPECT_EQ(check(worker("w2")).state, State::absent);
    EXPECT_TRUE(test::exists(outside.sub("w/.runtime/agent.lock")));
}

TEST_F(CheckWorkerTest, LooksOnlyWhereAPassLooks) {
    put("node_modules/w", test::dead_pid());
    put("a/b/c/w", test::dead_pid());
    put("w/.git", test::dead_pid()); // a pruned .runtime parent is fine, a pruned name is not
    TempDir elsewhere;
    EXPECT_EQ(check(worker("node_modules/w")).state, State::outside);
    EXPECT_EQ(check(elsewhere.path()).state, State::outside);
    EXPECT_EQ(check(worker("a/../a/b/c/w")).state, State::outside);
    EXPECT_EQ(check(worker("w/.git")).state, State::outside);
    m_options.walk.max_depth = 3;
    EXPECT_EQ(check(worker("a/b/c/w")).state, State::outside);
    m_options.walk.max_depth = 4;
    EXPECT_EQ(check(worker("a/b/c/w")).state, State::found);
    EXPECT_TRUE(test::exists(lock_of("node_modules/w")));
    EXPECT_TRUE(test::exists(lock_of("w/.git")));
}

TEST_F(CheckWorkerTest, NeverCrossesABindMountOfTheSameFileSystem) {
    // st_dev is the same on both sides of a bind mount of a directory of the same file system:
    // only the mount id tells that the lock lives outside the root.
    TempDir outside;
    test::write_file(
        outside.sub("w/.runtime/agent.lock"),
        test::go_lock_json(test::dead_pid(), test::now_rfc3339(), "", test::local_hostname()));
    test::make_dirs(worker("bind"));
    if (::mount(outside.path().c_str(), worker("bind").c_str(), nullptr, MS_BIND, nullptr) != 0) {
        GTEST_SKIP() << "cannot bind-mount here: " << std::strerror(errno);
    }
    WorkerCheck c = check(worker("bind/w"));
    ::umount2(worker("bind").c_str(), MNT_DETACH);
    EXPECT_EQ(c.state, State::outside) << c.error;
    EXPECT_TRUE(test::exists(outside.sub("w/.runtime/agent.lock")));
}

TEST_F(CheckWorkerTest, AnUnopenableDirectoryIsUnreachable) {
    namespace fs = std::filesystem;
    put("locked/w1", test::dead_pid());
    fs::permissions(worker("locked"), fs::perms::none);
    auto outcome_of_check = [this] {
        WorkerCheck c = check(worker("locked/w1"));
        return std::string(to_string(c.state)) + "\t" + c.error;
    };
    std::string outcome;
    if (::geteuid() == 0) {
        // Root opens any directory: the check runs as uid 65534 in a child, which must be able
        // to reach the root.
        fs::permissions(m_dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
        test::AsUserResult r = test::run_as_nobody(outcome_of_check);
        ASSERT_TRUE(r.dropped) << r.output;
        outcome = r.output;
    } else {
        outcome = outcome_of_check();
    }
    EXPECT_EQ(outcome.substr(0, outcome.find('\t')), "unreachable") << outcome;
    EXPECT_NE(outcome.find("Permission denied"), std::string::npos) << outcome;
    EXPECT_NE(outcome.find(worker("locked")), std::string::npos) << "names the directory";
    fs::permissions(worker("locked"), fs::perms::owner_all);
    EXPECT_TRUE(test::exists(lock_of("locked/w1"))) << "an unreachable lock is left alone";
}

TEST_F(CheckWorkerTest, InvalidForeignDryRunAndCancelKeepTheLock) {
    test::write_file(lock_of("invalid"), "{not json");
    put("foreign", test::dead_pid(), "", "another-host");
    put("stale", test::dead_pid());
    EXPECT_EQ(check(worker("invalid")).record.judgement.verdict, Verdict::invalid);
    EXPECT_EQ(check(worker("foreign")).record.judgement.verdict, Verdict::foreign);
    m_options.dry_run = true;
    EXPECT_EQ(check(worker("stale")).record.action, LockAction::would_remove);
    m_options.dry_run = false;
    std::atomic<bool> cancel{true};
    m_options.cancel = &cancel;
    EXPECT_EQ(check(worker("stale")).record.action, LockAction::kept);
    EXPECT_TRUE(test::exists(lock_of("invalid")));
    EXPECT_TRUE(test::exists(lock_of("foreign")));
    EXPECT_TRUE(test::exists(lock_of("stale")));
}

TEST_F(CheckWorkerTest, JudgesEveryLockAsAPassDoes) {
    Child live = test::spawn_sleeper();
    Child orphan = test::spawn_sleeper();
    put("rig/live", live.pid());
    put("rig/stale", test::dead_pid());
    put("rig/held", test::dead_pid(), "held");
    put("rig/orphan", orphan.pid(), "no-such-session");
    put("rig/foreign", test::dead_pid(), "", "another-host");
    put("rig/session-stale", test::dead_pid(), "gone");
    test::write_file(lock_of("rig/invalid"), "{not json");
    m_tmux.facts = test::tmux_ok({"held"});
    m_options.dry_run = true;

    SystemProcessProbe processes;
    const PassReport pass = run_pass(m_options, processes, m_tmux, m_host);
    ASSERT_EQ(pass.locks.size(), 7u);
    for (const auto& rec : pass.locks) {
        WorkerCheck c = check(rec.worker);
        ASSERT_EQ(c.state, State::found) << rec.worker;
        EXPECT_EQ(c.record.judgement.verdict, rec.judgement.verdict) << rec.worker;
        EXPECT_EQ(c.record.judgement.reason, rec.judgement.reason) << rec.worker;
        EXPECT_EQ(c.record.action, rec.action) << rec.worker;
        EXPECT_EQ(c.record.content, rec.content) << rec.worker;
        EXPECT_EQ(c.record.lock_path, rec.lock_path) << rec.worker;
    }
}

} // namespace
} // namespace agentlock
