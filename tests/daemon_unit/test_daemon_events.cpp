// Unit tests of agentlockd's event sources and of what they feed: the owner re-verify after
// pidfd_open (with a fake probe), the pidfd watcher on real processes, inotify records and
// watches on real directories, the watch plan, the search of a new directory, the lock table,
// partial finding updates and how re-checks are logged, and the new config keys and flags.

#include "command_line.hpp"
#include "dir_watch.hpp"
#include "pass_log.hpp"
#include "pid_watch.hpp"
#include "watch_plan.hpp"
#include <agentlock/config.hpp>
#include <agentlock/lock_table.hpp>

#include "asio_wait.hpp"
#include "daemon_test_support.hpp"
#include "fakes.hpp"
#include "judged.hpp"
#include "test_support.hpp"

#include <agentlock/findings.hpp>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include <cstring>
#include <filesystem>
#include <sstream>
#include <sys/inotify.h>
#include <unistd.h>

namespace agentlock::daemon {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using agentlock::daemon::test::finding;
using agentlock::test::Child;
using agentlock::test::TempDir;

using agentlock::test::run_until;

ProcessFacts alive(std::uint64_t ticks) {
    ProcessFacts f;
    f.state = ProcessState::alive;
    f.start_ticks = ticks;
    return f;
}

// ---------------------------------------------------------------------------------------------
// verify_owner: the PID may die or be reused between the judgement and pidfd_open

TEST(VerifyOwner, TheSameProcessPasses) {
    agentlock::test::FakeProcessProbe probe;
    probe.facts[42] = alive(1000);
    EXPECT_TRUE(verify_owner(probe, Owner{42, 1000}).same);
    EXPECT_EQ(probe.calls, 1);
}

TEST(VerifyOwner, AReusedPidIsCaughtByItsStartTicks) {
    agentlock::test::FakeProcessProbe probe;
    probe.facts[42] = alive(2000); // another process got PID 42 before the pidfd was opened
    OwnerRecheck r = verify_owner(probe, Owner{42, 1000});
    EXPECT_FALSE(r.same);
    EXPECT_NE(r.why.find("reused"), std::string::npos) << r.why;
    EXPECT_NE(r.why.find("2000"), std::string::npos) << r.why;
}

TEST(VerifyOwner, DeadZombieUnknownAndUnreadableAskForARecheck) {
    agentlock::test::FakeProcessProbe probe; // 7 is not in the table: dead
    EXPECT_FALSE(verify_owner(probe, Owner{7, 1000}).same);
    probe.facts[8].state = ProcessState::zombie;
    EXPECT_FALSE(verify_owner(probe, Owner{8, 1000}).same);
    probe.facts[9].state = ProcessState::unknown;
    probe.facts[9].detail = "EACCES";
    OwnerRecheck unknown = verify_owner(probe, Owner{9, 1000});
    EXPECT_FALSE(unknown.same);
    EXPECT_NE(unknown.why.find("EACCES"), std::string::npos) << unknown.why;
    probe.facts[10].state = ProcessState::alive; // alive, start time unreadable
    EXPECT_FALSE(verify_owner(probe, Owner{10, 1000}).same);
    EXPECT_TRUE(verify_owner(probe, Owner{10, std::nullopt}).same)
        << "nothing was judged to compare with";
}

TEST(PidfdBudget, LeavesHeadroomBelowTheOpenFilesLimit) {
    EXPECT_EQ(pidfd_budget(1024), 512u);
    EXPECT_EQ(pidfd_budget(20000), 17500u);
    EXPECT_EQ(pidfd_budget(4096), 3584u);
    EXPECT_LT(pidfd_budget(65536), 65536u);
}

// ---------------------------------------------------------------------------------------------
// PidWatcher on real processes

class PidWatcherTest : public ::testing::Test {
protected:
    std::unique_ptr<PidWatcher> make(std::size_t budget = 100) {
        return std::make_unique<PidWatcher>(
            m_io, budget, m_probe,
            [this](const std::set<std::string>& workers, const std::string& why) {
                for (const auto& w : workers) {
                    m_exited.push_back(w);
                }
                m_why.push_back(why);
            });
    }
    Owner owner_of(const Child& c) {
        ProcessFacts f = m_probe.probe(c.pid());
        return Owner{c.pid(), f.start_ticks};
    }

    boost::asio::io_context m_io;
    SystemProcessProbe m_probe;
    std::vector<std::string> m_exited;
    std::vector<std::string> m_why;
};

TEST_F(PidWatcherTest, AnExitedOwnerReportsItsWorkers) {
    Child a = agentlock::test::spawn_sleeper();
    auto w = make();
    w->set_owner("/r/w1", owner_of(a));
    w->set_owner("/r/w2", owner_of(a)); // duplicate-pid: one pidfd for both
    EXPECT_EQ(w->open_count(), 1u);
    EXPECT_TRUE(w->unwatched().empty());
    m_io.restart();
    m_io.run_for(50ms);
    EXPECT_TRUE(m_exited.empty()) << "a live owner reports nothing";

    a.kill_and_reap();
    ASSERT_TRUE(run_until(m_io, [this] { return m_exited.size() == 2; }));
    EXPECT_EQ(m_exited, (std::vector<std::string>{"/r/w1", "/r/w2"}));
    EXPECT_NE(m_why[0].find("exited"), std::string::npos) << m_why[0];
    EXPECT_EQ(w->open_count(), 0u) << "a fired pidfd is closed";
    w->set_owner("/r/w1", std::nullopt);
    w->set_owner("/r/w2", std::nullopt);
    EXPECT_EQ(w->open_count(), 0u);
}

TEST_F(PidWatcherTest, APidfdIsClosedWhenItsLastLockGoes) {
    Child a = agentlock::test::spawn_sleeper();
    Child b = agentlock::test::spawn_sleeper();
    auto w = make();
    w->set_owner("/r/w1", owner_of(a));
    w->set_owner("/r/w2", owner_of(a));
    w->set_owner("/r/w3", owner_of(b));
    EXPECT_EQ(w->open_count(), 2u);
    w->set_owner("/r/w1", std::nullopt);
    EXPECT_EQ(w->open_count(), 2u);
    w->set_owner("/r/w2", owner_of(b)); // re-acquired by b's agent
    EXPECT_EQ(w->open_count(), 1u);
    a.kill_and_reap();
    m_io.restart();
    m_io.run_for(100ms);
    EXPECT_TRUE(m_exited.empty()) << "nobody watches a any more";
    b.kill_and_reap();
    ASSERT_TRUE(run_until(m_io, [this] { return m_exited.size() == 2; }));
}

TEST_F(PidWatcherTest, AnOwnerDeadBeforeTheOpenIsReportedAtOnce) {
    auto w = make();
    w->set_owner("/r/w1", Owner{agentlock::test::dead_pid(), 1234});
    ASSERT_TRUE(run_until(m_io, [this] { return m_exited.size() == 1; }));
    EXPECT_EQ(m_exited[0], "/r/w1");
}

TEST_F(PidWatcherTest, APidReusedBeforeTheOpenIsReportedAtOnce) {
    // The lock was judged for a process with other start ticks: the pidfd opened now refers to
    // another process, so the lock must be judged again instead of waiting on it.
    Child a = agentlock::test::spawn_sleeper();
    Owner judged = owner_of(a);
    ASSERT_TRUE(judged.start_ticks.has_value());
    judged.start_ticks = *judged.start_ticks - 1;
    auto w = make();
    w->set_owner("/r/w1", judged);
    ASSERT_TRUE(run_until(m_io, [this] { return m_exited.size() == 1; }));
    EXPECT_NE(m_why[0].find("reused"), std::string::npos) << m_why[0];
}

TEST_F(PidWatcherTest, BeyondTheBudgetOwnersAreLeftToPolling) {
    Child a = agentlock::test::spawn_sleeper();
    Child b = agentlock::test::spawn_sleeper();
    auto w = make(1);
    w->set_owner("/r/w1", owner_of(a));
    w->set_owner("/r/w2", owner_of(b));
    EXPECT_EQ(w->open_count(), 1u);
    EXPECT_EQ(w->unwatched(), (std::set<std::string>{"/r/w2"}));
    EXPECT_NE(w->unwatched_reason().find("budget"), std::string::npos) << w->unwatched_reason();
    w->set_owner("/r/w2", std::nullopt);
    EXPECT_TRUE(w->unwatched().empty());
}

TEST_F(PidWatcherTest, DisabledLeavesEveryOwnerToPolling) {
    Child a = agentlock::test::spawn_sleeper();
    PidWatcher w(
        m_io, 100, m_probe, [](const std::set<std::string>&, const std::string&) {}, false);
    w.set_owner("/r/w1", owner_of(a));
    EXPECT_EQ(w.open_count(), 0u);
    EXPECT_EQ(w.unwatched(), (std::set<std::string>{"/r/w1"}));
}

// ---------------------------------------------------------------------------------------------
// inotify records and watches

std::string record_bytes(int wd, std::uint32_t mask, const std::string& name, std::size_t len) {
    std::string out(sizeof(inotify_event) + len, '\0');
    inotify_event ev{};
    ev.wd = wd;
    ev.mask = mask;
    ev.len = static_cast<std::uint32_t>(len);
    std::memcpy(out.data(), &ev, sizeof ev);
    std::memcpy(out.data() + sizeof ev, name.data(), std::min(name.size(), len));
    return out;
}

TEST(InotifyBuffer, SplitsRecordsAndStopsAtATruncatedOne) {
    std::string buf = record_bytes(3, IN_CREATE | IN_ISDIR, "w1", 16) +
                      record_bytes(4, IN_DELETE_SELF, "", 0) +
                      record_bytes(5, IN_CLOSE_WRITE, "agent.lock", 16);
    auto events = parse_inotify_buffer(buf.data(), buf.size());
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].wd, 3);
    EXPECT_EQ(events[0].name, "w1") << "NUL padding is dropped";
    EXPECT_EQ(events[0].mask, IN_CREATE | IN_ISDIR);
    EXPECT_EQ(events[1].name, "");
    EXPECT_EQ(events[2].name, "agent.lock");
    EXPECT_EQ(parse_inotify_buffer(buf.data(), buf.size() - 1).size(), 2u);
}

TEST(Paths, JoinAndParent) {
    EXPECT_EQ(join_path("/a", "b"), "/a/b");
    EXPECT_EQ(join_path("/", "b"), "/b");
    EXPECT_EQ(parent_path("/a/b"), "/a");
    EXPECT_EQ(parent_path("/a"), "/");
}

class DirWatcherTest : public ::testing::Test {
protected:
    void SetUp() override {
        const Status opened = m_watcher.open();
        ASSERT_TRUE(opened) << opened.error().message;
        m_watcher.start([this](std::vector<WatchEvent> events, bool overflow) {
            m_overflow = m_overflow || overflow;
            for (auto& e : events) {
                m_events.push_back(std::move(e));
            }
        });
    }
    bool saw(const std::string& dir, const std::string& name, std::uint32_t bit) {
        for (const auto& e : m_events) {
            if (e.dir == dir && e.name == name && (e.mask & bit) != 0) {
                return true;
            }
        }
        return false;
    }
    TempDir m_tmp;
    boost::asio::io_context m_io;
    DirWatcher m_watcher{m_io};
    std::vector<WatchEvent> m_events;
    bool m_overflow = false;
};

TEST_F(DirWatcherTest, ReportsNewDirectoriesAndLockWritesWithTheirPaths) {
    const std::string root = m_tmp.path();
    agentlock::test::make_dirs(root + "/w1/.runtime");
    EXPECT_EQ(outcome_of(m_watcher.add(root, WatchKind::dir)), AddWatch::added);
    EXPECT_EQ(outcome_of(m_watcher.add(root, WatchKind::dir)), AddWatch::present);
    EXPECT_EQ(outcome_of(m_watcher.add(root + "/w1/.runtime", WatchKind::runtime)),
              AddWatch::added);
    EXPECT_EQ(outcome_of(m_watcher.add(root + "/nope", WatchKind::dir)), AddWatch::gone);
    EXPECT_EQ(m_watcher.count(), 2u);

    agentlock::test::make_dirs(root + "/w2");
    agentlock::test::write_file(root + "/w1/.runtime/agent.lock", "{}");
    ASSERT_TRUE(run_until(m_io, [&] {
        return saw(root, "w2", IN_CREATE) &&
               saw(root + "/w1/.runtime", "agent.lock", IN_CLOSE_WRITE);
    }));
    for (const auto& e : m_events) {
        if (e.name == "w2") {
            EXPECT_EQ(e.kind, WatchKind::dir);
            EXPECT_NE(e.mask & IN_ISDIR, 0u);
        }
        if (e.name == "agent.lock") {
            EXPECT_EQ(e.kind, WatchKind::runtime);
        }
    }
    EXPECT_FALSE(m_overflow);
}

TEST_F(DirWatcherTest, ASymlinkIsNeverWatchedInPlaceOfADirectory) {
    TempDir outside;
    std::filesystem::create_directory_symlink(outside.path(), m_tmp.sub("link"));
    EXPECT_EQ(outcome_of(m_watcher.add(m_tmp.sub("link"), WatchKind::dir)), AddWatch::gone);
    EXPECT_EQ(m_watcher.count(), 0u);
}

TEST_F(DirWatcherTest, RemoveUnderAndSync) {
    const std::string root = m_tmp.path();
    for (const char* d : {"/a/b/c", "/a/bc", "/x"}) {
        agentlock::test::make_dirs(root + d);
    }
    for (const char* d : {"/a", "/a/b", "/a/b/c", "/a/bc", "/x"}) {
        ASSERT_EQ(outcome_of(m_watcher.add(root + d, WatchKind::dir)), AddWatch::added) << d;
    }
    m_watcher.remove_under(root + "/a/b");
    EXPECT_EQ(m_watcher.count(), 3u);
    EXPECT_TRUE(m_watcher.kind_of(root + "/a/bc")) << "a sibling with the same prefix stays";
    EXPECT_FALSE(m_watcher.kind_of(root + "/a/b/c"));

    EXPECT_EQ(outcome_of(m_watcher.add(root + "/x", WatchKind::runtime)), AddWatch::added)
        << "a new kind";
    const std::uint64_t round = m_watcher.begin_marking();
    for (const char* d : {"/x", "/a/bc", "/not-watched"}) {
        m_watcher.add(root + d, std::string(d) == "/x" ? WatchKind::runtime : WatchKind::dir);
    }
    m_watcher.drop_unmarked(round);
    EXPECT_EQ(m_watcher.count(), 2u);
    EXPECT_EQ(m_watcher.kind_of(root + "/x"), WatchKind::runtime);
    EXPECT_FALSE(m_watcher.kind_of(root + "/a"));
}

TEST_F(DirWatcherTest, MarkingDropsWhatARoundDidNotAdd) {
    const std::string root = m_tmp.path();
    for (const char* d : {"/a", "/b/.runtime", "/c"}) {
        agentlock::test::make_dirs(root + d);
    }
    ASSERT_EQ(outcome_of(m_watcher.add(root + "/a", WatchKind::dir)), AddWatch::added);
    ASSERT_EQ(outcome_of(m_watcher.add(root + "/c", WatchKind::dir)), AddWatch::added);
    const std::uint64_t round = m_watcher.begin_marking();
    EXPECT_EQ(outcome_of(m_watcher.add(root + "/a", WatchKind::dir)), AddWatch::present)
        << "met: marked";
    EXPECT_EQ(outcome_of(m_watcher.add(root + "/b/.runtime", WatchKind::runtime)), AddWatch::added);
    m_watcher.drop_unmarked(round);
    EXPECT_EQ(m_watcher.paths(), (std::vector<std::string>{root + "/a", root + "/b/.runtime"}));
    EXPECT_EQ(m_watcher.kind_of(root + "/b/.runtime"), WatchKind::runtime);
    EXPECT_FALSE(m_watcher.kind_of(root + "/c")) << "not met in the round: unwatched";

    // The .runtime watch is stored as its worker's pooled path plus the suffix, and ordered by
    // its whole text among plain paths: remove_under finds it by prefix.
    agentlock::test::make_dirs(root + "/b/.runtimes");
    ASSERT_EQ(outcome_of(m_watcher.add(root + "/b/.runtimes", WatchKind::dir)), AddWatch::added);
    m_watcher.remove_under(root + "/b/.runtime");
    EXPECT_EQ(m_watcher.paths(), (std::vector<std::string>{root + "/a", root + "/b/.runtimes"}));
}

TEST_F(DirWatcherTest, ADeletedDirectoryIsForgotten) {
    agentlock::test::make_dirs(m_tmp.sub("w"));
    ASSERT_EQ(outcome_of(m_watcher.add(m_tmp.sub("w"), WatchKind::dir)), AddWatch::added);
    std::filesystem::remove(m_tmp.sub("w"));
    ASSERT_TRUE(run_until(m_io, [&] { return saw(m_tmp.sub("w"), "", IN_DELETE_SELF); }));
    ASSERT_TRUE(run_until(m_io, [&] { return m_watcher.count() == 0; })) << "IN_IGNORED";
}

// ---------------------------------------------------------------------------------------------
// The watch plan and the search of new directories

TEST(WatchPlan, TheWatchDepth) {
    EXPECT_EQ(watch_depth_for(0, WalkOptions{}), k_min_watch_depth);
    EXPECT_EQ(watch_depth_for(5, WalkOptions{}), 5u);
    EXPECT_EQ(watch_depth_for(50, WalkOptions{}), k_max_watch_depth);
    WalkOptions shallow;
    shallow.max_depth = 2;
    EXPECT_EQ(watch_depth_for(5, shallow), 2u);
}

TEST(WatchPlan, TheFleetDownToTheWatchDepthNeverInsideAWorker) {
    TempDir tmp;
    boost::asio::io_context io;
    DirWatcher watcher(io);
    const Status opened = watcher.open();
    ASSERT_TRUE(opened) << opened.error().message;
    const std::string root = tmp.sub("root");
    agentlock::test::make_dirs(root + "/rig/polecats/w1/.runtime");
    agentlock::test::make_dirs(root + "/rig/polecats/w1/src/lib"); // a checkout: not watched
    agentlock::test::make_dirs(root +
                               "/rig/polecats/w2/.runtime"); // no lock yet: watched all the same
    agentlock::test::make_dirs(root +
                               "/rig/polecats/w3/deeper"); // no .runtime; deeper: not watched
    agentlock::test::make_dirs(root + "/rig/polecats/node_modules");
    agentlock::test::make_dirs(root + "/rig/.git/objects");
    agentlock::test::make_dirs(root + "/a/b/c/d/e/w9/.runtime"); // a known worker, far down
    agentlock::test::make_dirs(tmp.sub("root2"));
    FleetWatch w = watch_fleet({root, tmp.sub("root2")}, {root + "/a/b/c/d/e/w9", "/elsewhere/w"},
                               WalkOptions{}, 3, watcher);
    EXPECT_EQ(w.worst, AddWatch::added) << w.error;
    std::set<std::string> want = {
        root,
        tmp.sub("root2"),
        root + "/rig",
        root + "/rig/polecats",
        root + "/rig/polecats/w1/.runtime", // a worker: its .runtime, not itself
        root + "/rig/polecats/w2/.runtime",
        root + "/rig/polecats/w3", // not a worker yet: watched for its .runtime to appear
        root + "/a",
        root + "/a/b",
        root + "/a/b/c",
        root + "/a/b/c/d",
        root + "/a/b/c/d/e",
        root + "/a/b/c/d/e/w9/.runtime",
    };
    EXPECT_EQ(watcher.paths(), std::vector<std::string>(want.begin(), want.end()));
    EXPECT_EQ(watcher.count(), want.size());
    EXPECT_EQ(watcher.kind_of(root + "/rig/polecats/w2/.runtime"), WatchKind::runtime);
    EXPECT_EQ(watcher.kind_of(root + "/rig/polecats/w3"), WatchKind::dir);

    // The way to a worker found later, without a .runtime yet: the worker itself is watched.
    agentlock::test::make_dirs(root + "/x/y/w5");
    EXPECT_EQ(watch_way(root, root + "/x/y/w5", watcher).worst, AddWatch::added);
    EXPECT_EQ(watcher.kind_of(root + "/x"), WatchKind::dir);
    EXPECT_EQ(watcher.kind_of(root + "/x/y"), WatchKind::dir);
    EXPECT_EQ(watcher.kind_of(root + "/x/y/w5"), WatchKind::dir);
}

TEST(ScanNewDirectory, WatchesDownToTheWatchDepthAndFindsLocksAtAnyDepth) {
    TempDir tmp;
    boost::asio::io_context io;
    DirWatcher watcher(io);
    const Status opened = watcher.open();
    ASSERT_TRUE(opened) << opened.error().message;
    const std::string root = tmp.sub("root");
    agentlock::test::write_file(root + "/rig2/polecats/w1/.runtime/agent.lock", "{}");
    agentlock::test::write_file(root + "/rig2/polecats/w1/src/deep/w9/.runtime/agent.lock", "{}");
    agentlock::test::write_file(root + "/rig2/.git/w8/.runtime/agent.lock", "{}");
    agentlock::test::make_dirs(root + "/rig2/polecats/w2");

    ScanResult r = scan_new_directory(root, root + "/rig2", WalkOptions{}, 4, watcher);
    EXPECT_EQ(r.watch, AddWatch::added) << r.error;
    EXPECT_EQ(r.workers, (std::vector<std::string>{root + "/rig2/polecats/w1",
                                                   root + "/rig2/polecats/w1/src/deep/w9"}));
    EXPECT_EQ(watcher.kind_of(root + "/rig2"), WatchKind::dir);
    EXPECT_EQ(watcher.kind_of(root + "/rig2/polecats/w1"), WatchKind::dir);
    EXPECT_EQ(watcher.kind_of(root + "/rig2/polecats/w2"), WatchKind::dir);
    EXPECT_EQ(watcher.kind_of(root + "/rig2/polecats/w1/.runtime"), WatchKind::runtime);
    EXPECT_FALSE(watcher.kind_of(root + "/rig2/polecats/w1/src")) << "inside a worker";
    EXPECT_FALSE(watcher.kind_of(root + "/rig2/.git")) << "pruned";
    agentlock::test::make_dirs(root + "/rig3/a/b/c/d");
    scan_new_directory(root, root + "/rig3", WalkOptions{}, 3, watcher);
    EXPECT_TRUE(watcher.kind_of(root + "/rig3/a/b"));
    EXPECT_FALSE(watcher.kind_of(root + "/rig3/a/b/c")) << "deeper than the watch depth";

    // A .runtime that appears is watched as such and its worker is returned.
    agentlock::test::make_dirs(root + "/rig2/polecats/w2/.runtime");
    r = scan_new_directory(root, root + "/rig2/polecats/w2/.runtime", WalkOptions{}, 3, watcher);
    EXPECT_EQ(r.workers, (std::vector<std::string>{root + "/rig2/polecats/w2"}));
    EXPECT_EQ(watcher.kind_of(root + "/rig2/polecats/w2/.runtime"), WatchKind::runtime);

    // max_depth counts from the root.
    WalkOptions shallow;
    shallow.max_depth = 3;
    r = scan_new_directory(root, root + "/rig2", shallow, 3, watcher);
    EXPECT_EQ(r.workers, (std::vector<std::string>{root + "/rig2/polecats/w1"}));
}

// ---------------------------------------------------------------------------------------------
// The lock table

using agentlock::test::absent_check;
using agentlock::test::found_check;
using agentlock::test::judged_record;
using agentlock::test::report_with;

TEST(LockTable, OwnersSessionsAndUpdates) {
    LockTable t;
    PassReport pass = report_with({
        judged_record("/srv/live", Verdict::live, 10),
        judged_record("/srv/orphan", Verdict::orphaned, 11, "gone"),
        judged_record("/srv/held", Verdict::held_by_session, 12, "s1"),
        judged_record("/srv/removed", Verdict::stale, 13, "", LockAction::removed),
        judged_record("/srv/foreign", Verdict::foreign, 14),
    });
    t.replace(pass);
    EXPECT_TRUE(pass.summaries.empty()) << "the table takes the summaries";
    EXPECT_EQ(t.size(), 4u) << "a removed lock is not kept";
    EXPECT_EQ(t.workers(),
              (std::vector<std::string>{"/srv/foreign", "/srv/held", "/srv/live", "/srv/orphan"}));
    EXPECT_EQ(t.owner_of("/srv/live"), (Owner{10, 77}));
    EXPECT_EQ(t.owner_of("/srv/orphan"), (Owner{11, 77}));
    EXPECT_FALSE(t.owner_of("/srv/held"));
    EXPECT_FALSE(t.owner_of("/srv/foreign"));
    ASSERT_EQ(t.session_waits().size(), 1u);
    EXPECT_EQ(t.session_waits()[0].worker, "/srv/held");
    EXPECT_EQ(t.session_waits()[0].session_id, "s1");
    ASSERT_NE(t.find("/srv/live"), nullptr);
    EXPECT_EQ(t.find("/srv/live")->pid, 10);
    EXPECT_EQ(t.find("/srv/removed"), nullptr);

    // Re-checks: the owner died (held by its session now), a lock was removed, one vanished,
    // one could not be reached (left as it was).
    t.apply(found_check(judged_record("/srv/live", Verdict::held_by_session, 10, "s2")));
    t.apply(
        found_check(judged_record("/srv/orphan", Verdict::stale, 11, "gone", LockAction::removed)));
    t.apply(absent_check("/srv/held"));
    WorkerCheck unreachable = absent_check("/srv/foreign");
    unreachable.state = WorkerCheck::State::unreachable;
    t.apply(unreachable);
    EXPECT_EQ(t.workers(), (std::vector<std::string>{"/srv/foreign", "/srv/live"}));
    EXPECT_FALSE(t.owner_of("/srv/live"));
    ASSERT_EQ(t.session_waits().size(), 1u);
    EXPECT_EQ(t.session_waits()[0].session_id, "s2");

    // Judged unknown while tmux was unknown: it waits on tmux too.
    t.apply(found_check(judged_record("/srv/u", Verdict::unknown, 15, "s3"),
                        agentlock::test::tmux_state(TmuxState::unknown, "timeout")));
    auto waits = t.session_waits();
    ASSERT_EQ(waits.size(), 2u);
    EXPECT_TRUE(waits[1].tmux_was_unknown);
    EXPECT_EQ(t.workers_under("/srv/l"), std::vector<std::string>{});
    EXPECT_EQ(t.workers_under("/srv"), t.workers());
    EXPECT_EQ(t.deepest_worker({"/srv"}), 1u);
}

TEST(LockTable, ForgottenWorkersLeaveTombstonesThatCountForNothing) {
    LockTable t;
    std::deque<LockRecord> recs;
    for (int i = 0; i < 200; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "/srv/w%03d", i);
        recs.push_back(judged_record(name, Verdict::live, 1000 + i));
    }
    PassReport pass = report_with(recs);
    t.replace(pass);
    ASSERT_EQ(t.size(), 200u);
    // Forget most of them, one re-check at a time (the table compacts on the way).
    for (int i = 0; i < 190; ++i) {
        t.apply(absent_check(recs[static_cast<std::size_t>(i)].worker));
        ASSERT_EQ(t.size(), static_cast<std::size_t>(199 - i)) << i;
        ASSERT_EQ(t.find(recs[static_cast<std::size_t>(i)].worker), nullptr) << i;
    }
    EXPECT_EQ(t.workers().size(), 10u);
    EXPECT_EQ(t.workers().front(), "/srv/w190");
    EXPECT_FALSE(t.owner_of("/srv/w000"));
    EXPECT_EQ(t.owner_of("/srv/w199"), (Owner{1199, 77}));
    // A forgotten worker comes back in its place; a new one goes in order.
    t.apply(found_check(judged_record("/srv/w005", Verdict::live, 5)));
    t.apply(found_check(judged_record("/srv/a-new", Verdict::live, 6)));
    EXPECT_EQ(t.size(), 12u);
    EXPECT_EQ(t.workers().front(), "/srv/a-new");
    EXPECT_EQ(t.workers()[1], "/srv/w005");
    EXPECT_EQ(t.workers_under("/srv"), t.workers());
    EXPECT_EQ(t.find("/srv/w005")->pid, 5);
}

TEST(LockTable, CollisionsAmongTheKnownLocks) {
    LockTable t;
    PassReport pass = report_with({judged_record("/srv/a", Verdict::live, 10),
                                   judged_record("/srv/b", Verdict::live, 10),
                                   judged_record("/srv/c", Verdict::live, 11)});
    t.replace(pass);
    auto c = t.collisions();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].kind, CollisionKind::duplicate_pid);
    t.apply(found_check(judged_record("/srv/a", Verdict::stale, 10, "", LockAction::removed)));
    EXPECT_TRUE(t.collisions().empty());
}

// ---------------------------------------------------------------------------------------------
// FindingTracker::update_some

TEST(FindingTrackerSome, OnlyTheScopeIsComparedTheRestStays) {
    FindingTracker t;
    t.update({finding("lock.orphaned", "/srv/a"), finding("lock.unknown", "/srv/b"),
              finding("collision.duplicate_pid", "/srv/x\n/srv/y")});
    auto for_a = [](const Finding& f) { return f.key == "/srv/a"; };
    // /srv/a now held by its session: its old finding resolves, the new one appears.
    auto c = t.update_some({finding("lock.held_by_session", "/srv/a")}, for_a);
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0].state, FindingState::resolved);
    EXPECT_EQ(c[0].event(), "lock.orphaned");
    EXPECT_EQ(c[1].state, FindingState::appeared);
    EXPECT_EQ(c[1].event(), "lock.held_by_session");
    EXPECT_EQ(t.open_count(), 3u) << "/srv/b and the collision are left alone";
    EXPECT_TRUE(t.update_some({finding("lock.held_by_session", "/srv/a")}, for_a).empty());
    EXPECT_EQ(t.update_some({finding("lock.held_by_session", "/srv/a", "v2")}, for_a)[0].state,
              FindingState::changed);
    // Gone, but under a frozen root: kept.
    EXPECT_TRUE(t.update_some({}, for_a, {"/srv"}).empty());
    EXPECT_EQ(t.update_some({}, for_a).size(), 1u);
    // A full update still resolves everything else.
    EXPECT_EQ(t.update({}).size(), 2u);
    EXPECT_EQ(t.open_count(), 0u);
}

// ---------------------------------------------------------------------------------------------
// PassLogger::log_checks: a re-check is logged as a pass would log its lock

class LogChecksTest : public ::testing::Test {
protected:
    LogChecksTest()
        : m_sink(std::make_shared<spdlog::sinks::ostream_sink_mt>(m_out)),
          m_log(LogFormat::json, LogLevel::debug, m_sink), m_pass_log(m_log) {
        m_tmux.state = TmuxState::ok;
    }
    std::vector<json::object> take() {
        std::vector<json::object> events;
        std::istringstream in(m_out.str());
        for (std::string line; std::getline(in, line);) {
            events.push_back(json::parse(line).as_object());
        }
        m_out.str("");
        return events;
    }
    static std::vector<json::object> named(const std::vector<json::object>& events,
                                           std::string_view name) {
        std::vector<json::object> out;
        for (const auto& e : events) {
            if (e.at("event").get_string() == name) {
                out.push_back(e);
            }
        }
        return out;
    }

    std::ostringstream m_out;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> m_sink;
    EventLog m_log;
    PassLogger m_pass_log;
    TmuxFacts m_tmux;
    std::chrono::steady_clock::time_point m_t0 = std::chrono::steady_clock::now();
};

TEST_F(LogChecksTest, ARemovalCarriesItsTriggerAndResolvesOnlyItsLocksFinding) {
    m_pass_log.log_pass(report_with({judged_record("/srv/o", Verdict::orphaned, 9, "gone"),
                                     judged_record("/srv/p", Verdict::orphaned, 8, "gone2")}),
                        false, m_t0);
    ASSERT_EQ(named(take(), "lock.orphaned").size(), 2u);

    m_pass_log.log_checks(
        {{found_check(judged_record("/srv/o", Verdict::stale, 9, "gone", LockAction::removed)),
          "pidfd"}},
        m_tmux, {}, {});
    auto events = take();
    auto removed = named(events, "lock.removed");
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(removed[0].at("trigger"), "pidfd");
    EXPECT_EQ(removed[0].at("action"), "removed");
    EXPECT_EQ(removed[0].at("content"), "{\"pid\": 9}") << "the full content, as from a pass";
    EXPECT_EQ(removed[0].at("pid").as_int64(), 9);
    EXPECT_EQ(removed[0].at("tmux_state"), "ok");
    auto resolved = named(events, "lock.orphaned");
    ASSERT_EQ(resolved.size(), 1u) << "/srv/p is not touched";
    EXPECT_EQ(resolved[0].at("state"), "resolved");
    EXPECT_EQ(resolved[0].at("now"), "removed");
    EXPECT_EQ(resolved[0].at("lock_path"), "/srv/o/.runtime/agent.lock");
    EXPECT_EQ(m_pass_log.open_findings(), 1u);

    // The next pass agrees: nothing more to say.
    m_pass_log.log_pass(report_with({judged_record("/srv/p", Verdict::orphaned, 8, "gone2")}),
                        false, m_t0 + 1s);
    EXPECT_TRUE(named(take(), "lock.orphaned").empty());
}

TEST_F(LogChecksTest, ANewFindingAppearsAVanishedLockResolvesAsGone) {
    m_pass_log.log_checks(
        {{found_check(judged_record("/srv/h", Verdict::held_by_session, 9, "s")), "pidfd"}}, m_tmux,
        {}, {});
    auto held = named(take(), "lock.held_by_session");
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].at("state"), "appeared");
    m_pass_log.log_checks({{absent_check("/srv/h"), "inotify"}}, m_tmux, {}, {});
    held = named(take(), "lock.held_by_session");
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].at("state"), "resolved");
    EXPECT_EQ(held[0].at("now"), "gone");
}

TEST_F(LogChecksTest, CollisionsFollowTheTableAndPassesUseTriggerPass) {
    PassReport r = report_with(
        {judged_record("/srv/a", Verdict::live, 10), judged_record("/srv/b", Verdict::live, 10),
         judged_record("/srv/s", Verdict::stale, 3, "", LockAction::removed)});
    LockTable t;
    t.replace(r);
    r.collisions = t.collisions();
    m_pass_log.log_pass(r, false, m_t0);
    auto events = take();
    ASSERT_EQ(named(events, "collision.duplicate_pid").size(), 1u);
    ASSERT_EQ(named(events, "lock.removed").size(), 1u);
    EXPECT_EQ(named(events, "lock.removed")[0].at("trigger"), "pass");

    const WorkerCheck gone =
        found_check(judged_record("/srv/a", Verdict::stale, 10, "", LockAction::removed));
    t.apply(gone);
    m_pass_log.log_checks({{gone, "pidfd"}}, m_tmux, t.collisions(), {});
    auto dup = named(take(), "collision.duplicate_pid");
    ASSERT_EQ(dup.size(), 1u);
    EXPECT_EQ(dup[0].at("state"), "resolved");
}

TEST_F(LogChecksTest, AnUnreachableWorkerChangesNothing) {
    m_pass_log.log_pass(report_with({judged_record("/srv/o", Verdict::orphaned, 9, "gone")}), false,
                        m_t0);
    take();
    WorkerCheck c = absent_check("/srv/o");
    c.state = WorkerCheck::State::unreachable;
    m_pass_log.log_checks({{c, "inotify"}}, m_tmux, {}, {});
    EXPECT_TRUE(take().empty());
    EXPECT_EQ(m_pass_log.open_findings(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Config keys and flags

TEST(EventsConfig, KeysFlagsAndThePassPeriod) {
    std::string why;
    auto c = parse_config(R"({"roots": ["/a"], "events": false, "full_pass_interval": "10m"})",
                          "t.json");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_FALSE(c->events);
    EXPECT_EQ(c->full_pass_interval, 10min);
    EXPECT_FALSE(c->interval_set);
    EXPECT_TRUE(c->full_pass_interval_set);
    auto bad_events = parse_config(R"({"events": "yes"})", "t.json");
    ASSERT_FALSE(bad_events);
    EXPECT_NE(bad_events.error().message.find("\"events\""), std::string::npos);
    auto bad_full = parse_config(R"({"full_pass_interval": 5})", "t.json");
    ASSERT_FALSE(bad_full);
    EXPECT_NE(bad_full.error().message.find("\"full_pass_interval\""), std::string::npos);

    Config d;
    EXPECT_TRUE(d.events) << "events are on by default";
    EXPECT_EQ(pass_period(d, true), 5min) << "the safety net";
    EXPECT_EQ(pass_period(d, false), 30s) << "polling";
    d.interval = 2s;
    d.interval_set = true;
    EXPECT_EQ(pass_period(d, true), 2s) << "a config that sets only interval keeps its passes";
    d.full_pass_interval = 1h;
    d.full_pass_interval_set = true;
    EXPECT_EQ(pass_period(d, true), 1h);
    EXPECT_EQ(pass_period(d, false), 2s);
    auto both = parse_config(R"({"roots": ["/a"], "interval": "2s", "full_pass_interval": "1h"})",
                             "t.json");
    ASSERT_TRUE(both) << both.error().message;
    EXPECT_EQ(pass_period(*both, true), 1h);

    auto cl = parse_command_line(
        {"--root", "/a", "--no-events", "--full-pass-interval", "1h", "--interval", "3s"});
    ASSERT_TRUE(cl) << cl.error().message;
    EXPECT_EQ(cl->overrides.events, false);
    EXPECT_EQ(cl->overrides.full_pass_interval, 1h);
    Config e;
    apply_overrides(e, cl->overrides);
    EXPECT_FALSE(e.events);
    EXPECT_TRUE(e.interval_set);
    EXPECT_FALSE(parse_command_line({"--no-events=1"}));
    e.full_pass_interval = 1ms;
    e.roots = {"/a"};
    Status finished = finish_config(e);
    ASSERT_FALSE(finished);
    EXPECT_NE(finished.error().message.find("full_pass_interval"), std::string::npos);

    Fields fields = config_fields(Config{});
    EXPECT_EQ(agentlock::test::field(fields, "events"), "true");
    EXPECT_EQ(agentlock::test::field(fields, "full_pass_interval"), "5m");
    EXPECT_NE(help_text().find("--full-pass-interval"), std::string::npos);
    EXPECT_NE(help_text().find("--no-events"), std::string::npos);
}

// Tests take event sources away from the real binary by making the kernel lack them
// (tests/support/without_syscalls), not through a switch in the production command line.
TEST(EventsConfig, TheTestOnlyDisableFlagIsGone) {
    for (const auto& args :
         std::vector<std::vector<std::string>>{{"--root", "/a", "--events-test-disable", "pidfd"},
                                               {"--root", "/a", "--events-test-disable=inotify"}}) {
        auto cl = parse_command_line(args);
        ASSERT_FALSE(cl) << "accepted: " << args[2];
        EXPECT_EQ(cl.error().kind, ErrorKind::invalid);
        EXPECT_EQ(cl.error().path, "--events-test-disable");
        EXPECT_NE(cl.error().message.find("unknown option --events-test-disable"),
                  std::string::npos)
            << cl.error().message;
    }
    EXPECT_EQ(help_text().find("--events-test-disable"), std::string::npos);
}

} // namespace
} // namespace agentlock::daemon
