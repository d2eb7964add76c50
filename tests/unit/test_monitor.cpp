// The monitor's policy, with a fake clock and fake watches: what it hands out, when, and what it
// watches. Nothing here sleeps or touches the system.

#include "fakes.hpp"
#include "judged.hpp"

#include <agentlock/monitor.hpp>

#include <gtest/gtest.h>

#include <sys/inotify.h>

#include <chrono>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::FakeDirWatchSet;
using test::FakeOwnerWatch;
using test::FakeTmuxWatch;

using test::found_check;
using test::report_with;

// A lock judged `verdict`, as a pass or re-check hands it to the monitor.
LockRecord record(const std::string& worker, Verdict verdict, std::int64_t pid,
                  const std::string& session = "", LockAction action = LockAction::kept) {
    return test::judged_record(worker, verdict, pid, session, action);
}

MonitorSettings settings() {
    MonitorSettings s;
    s.roots = {"/srv"};
    s.interval = 30s;
    s.events_pass_period = 5min;
    s.polling_pass_period = 30s;
    return s;
}

class MonitorTest : public ::testing::Test {
protected:
    MonitorTest() : m_monitor(m_clock, settings()) {
        m_owners.on_exit = [this](const std::set<std::string>& w) { m_monitor.owner_exited(w); };
        m_dirs.kinds["/srv"] = WatchKind::dir;
    }

    void events_on() { m_monitor.set_events(&m_owners, &m_dirs); }

    // Hands out the first pass and finishes it with `locks`.
    void first_pass(std::deque<LockRecord> locks, TmuxState tmux = TmuxState::ok) {
        auto work = m_monitor.next_work();
        ASSERT_TRUE(work);
        ASSERT_EQ(work->kind, MonitorWork::Kind::pass);
        PassReport report = report_with(std::move(locks), tmux);
        m_monitor.pass_done(&report, false);
    }

    // Asks for a pass, hands it out and finishes it with `locks`.
    void first_pass_again(std::deque<LockRecord> locks) {
        m_monitor.request_pass();
        first_pass(std::move(locks));
    }

    // The batch due now; fails the test when there is none or a pass comes instead.
    RecheckBatch batch_now() {
        auto work = m_monitor.next_work();
        if (!work) {
            ADD_FAILURE() << "no work due";
            return {};
        }
        EXPECT_EQ(work->kind, MonitorWork::Kind::recheck);
        return work->batch;
    }

    // How long until the monitor wants to be woken.
    std::chrono::milliseconds wake_in() const {
        auto wake = m_monitor.next_wake();
        if (!wake) {
            return std::chrono::milliseconds::max();
        }
        return std::chrono::duration_cast<std::chrono::milliseconds>(*wake - m_clock.now());
    }

    FakeClock m_clock;
    FakeOwnerWatch m_owners;
    FakeDirWatchSet m_dirs;
    Monitor m_monitor;
};

WatchEvent lock_event(const std::string& worker, std::uint32_t mask) {
    return WatchEvent{worker + "/.runtime", WatchKind::runtime, "agent.lock", mask};
}

TEST_F(MonitorTest, TheFirstPassComesAtOnceThenOnePeriodAfterEachStart) {
    auto work = m_monitor.next_work();
    ASSERT_TRUE(work);
    EXPECT_EQ(work->kind, MonitorWork::Kind::pass);
    EXPECT_FALSE(m_monitor.next_work()) << "one piece of work at a time";
    EXPECT_FALSE(m_monitor.next_wake()) << "the running pass's end comes first";

    m_clock.advance(2s); // the pass took 2 s
    PassReport report = report_with({});
    m_monitor.pass_done(&report, false);
    EXPECT_EQ(m_monitor.pass_period(), 30s) << "no events: the polling period";
    EXPECT_EQ(wake_in(), 28s) << "passes start one period apart";
    EXPECT_FALSE(m_monitor.next_work());
    m_clock.advance(28s);
    work = m_monitor.next_work();
    ASSERT_TRUE(work);
    EXPECT_EQ(work->kind, MonitorWork::Kind::pass);
}

TEST_F(MonitorTest, WithEventsFullPassesComeEveryFullPassPeriod) {
    events_on();
    first_pass({});
    EXPECT_EQ(m_monitor.pass_period(), 5min);
    EXPECT_EQ(wake_in(), 5min);
}

TEST_F(MonitorTest, PassRequestsWhileBusyRunOnePassAfterTheCurrentWork) {
    EXPECT_EQ(m_monitor.request_pass(), PassWhen::now);
    ASSERT_TRUE(m_monitor.next_work()); // the first pass
    EXPECT_EQ(m_monitor.request_pass(), PassWhen::after_current);
    EXPECT_EQ(m_monitor.request_pass(), PassWhen::merged);
    PassReport report = report_with({});
    m_monitor.pass_done(&report, false);
    auto again = m_monitor.next_work();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->kind, MonitorWork::Kind::pass);
    m_monitor.pass_done(&report, false);
    EXPECT_FALSE(m_monitor.next_work()) << "the two requests made one pass";
}

TEST_F(MonitorTest, AnOwnerExitIsJudgedAtOnceAndItsOwnersAreWatched) {
    events_on();
    first_pass({record("/srv/a", Verdict::live, 10),
                record("/srv/b", Verdict::held_by_session, 11, "s1"),
                record("/srv/c", Verdict::stale, 12, "", LockAction::removed)});
    EXPECT_EQ(m_owners.owners.size(), 1u) << "only the live owner is watched";
    EXPECT_EQ(m_owners.owners.at("/srv/a"), (Owner{10, 77}));

    m_monitor.owner_exited({"/srv/a"});
    EXPECT_EQ(wake_in(), 0ms);
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.checks, (std::map<std::string, std::string>{{"/srv/a", "pidfd"}}));
    EXPECT_TRUE(batch.session_waits.empty()) << "tmux is not asked before its poll is due";

    // The lock went: its owner is no longer watched.
    m_monitor.batch_done(
        {{found_check(record("/srv/a", Verdict::stale, 10, "", LockAction::removed)), "pidfd"}},
        std::nullopt, false);
    EXPECT_EQ(m_owners.owners.count("/srv/a"), 0u);
    EXPECT_EQ(m_monitor.table().find("/srv/a"), nullptr);
}

TEST_F(MonitorTest, LockChangesAreDebouncedIntoOneRecheck) {
    events_on();
    first_pass({});
    m_monitor.dir_events({lock_event("/srv/w", IN_CREATE)}, false);
    EXPECT_EQ(wake_in(), 200ms) << "a lock being written is judged once it is closed";
    m_clock.advance(5ms);
    m_monitor.dir_events({lock_event("/srv/w", IN_CLOSE_WRITE)}, false);
    EXPECT_EQ(wake_in(), 20ms) << "its close brings the re-check forward";
    m_monitor.dir_events({lock_event("/srv/w", IN_CLOSE_WRITE), lock_event("/srv/w", IN_MOVED_TO)},
                         false);
    EXPECT_FALSE(m_monitor.next_work()) << "not before the debounce";
    m_clock.advance(20ms);
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.checks, (std::map<std::string, std::string>{{"/srv/w", "inotify"}}));
    m_monitor.batch_done({}, std::nullopt, false);
    EXPECT_FALSE(m_monitor.next_work()) << "three events, one re-check";
}

TEST_F(MonitorTest, NewDirectoriesAreSearchedUnlessPrunedOrInsideAWorker) {
    events_on();
    first_pass({record("/srv/rig/w1", Verdict::live, 10)});
    m_dirs.kinds["/srv/rig/w1/.runtime"] = WatchKind::runtime;
    m_monitor.dir_events({{"/srv", WatchKind::dir, "rig2", IN_CREATE | IN_ISDIR},
                          {"/srv", WatchKind::dir, ".git", IN_CREATE | IN_ISDIR},
                          {"/srv/rig/w1", WatchKind::dir, "src", IN_CREATE | IN_ISDIR},
                          {"/srv", WatchKind::dir, "notes.txt", IN_CREATE}},
                         false);
    m_clock.advance(20ms);
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.scans, std::vector<std::string>{"/srv/rig2"});
    EXPECT_EQ(batch.deepest_worker, 2u);
}

TEST_F(MonitorTest, ARemovedDirectoryRechecksTheWorkersBelowItAndARemovedRootAPass) {
    events_on();
    first_pass({record("/srv/rig/w1", Verdict::live, 10), record("/srv/rig/w2", Verdict::live, 11),
                record("/srv/other/w3", Verdict::live, 12)});
    m_monitor.dir_events({{"/srv", WatchKind::dir, "rig", IN_MOVED_FROM | IN_ISDIR}}, false);
    EXPECT_EQ(m_dirs.removed, std::vector<std::string>{"/srv/rig"})
        << "its watches' paths are wrong";
    m_clock.advance(20ms);
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.checks, (std::map<std::string, std::string>{{"/srv/rig/w1", "inotify"},
                                                                {"/srv/rig/w2", "inotify"}}));
    m_monitor.batch_done({}, std::nullopt, false);

    m_monitor.dir_events({{"/srv", WatchKind::dir, "", IN_DELETE_SELF}}, false);
    auto requests = m_monitor.take_pass_requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].first, "root /srv was removed or moved");
    EXPECT_EQ(requests[0].second, PassWhen::now);
    auto work = m_monitor.next_work();
    ASSERT_TRUE(work);
    EXPECT_EQ(work->kind, MonitorWork::Kind::pass);
}

TEST_F(MonitorTest, AnOverflowAsksForAFullPass) {
    events_on();
    first_pass({});
    m_monitor.dir_events({}, true);
    auto requests = m_monitor.take_pass_requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].first, "inotify queue overflow");
    auto work = m_monitor.next_work();
    ASSERT_TRUE(work);
    EXPECT_EQ(work->kind, MonitorWork::Kind::pass);
}

TEST_F(MonitorTest, HeldBySessionLocksMakeTmuxBeAskedAndABackoffWhenItIsUnknown) {
    events_on();
    first_pass({record("/srv/a", Verdict::held_by_session, 10, "%3"),
                record("/srv/b", Verdict::live, 11)});
    EXPECT_EQ(wake_in(), 300ms);
    m_clock.advance(300ms);
    RecheckBatch batch = batch_now();
    ASSERT_EQ(batch.session_waits.size(), 1u);
    EXPECT_EQ(batch.session_waits[0].worker, "/srv/a");
    EXPECT_EQ(batch.session_waits[0].session_id, "%3");
    EXPECT_TRUE(batch.checks.empty());

    m_monitor.batch_done({}, test::tmux_state(TmuxState::unknown, "timed out"), false);
    EXPECT_EQ(wake_in(), 5000ms) << "a hanging tmux is not asked every 300 ms";
    m_clock.advance(5000ms);
    batch = batch_now();
    m_monitor.batch_done({}, test::tmux_ok({}, {}, {"%3"}), false);
    EXPECT_EQ(wake_in(), 300ms);
}

// gastown's pattern: a lock held by its pane, whose pane process (500) and server (10) are
// watched. tmux is asked when one of them exits, else only every interval.
class TmuxEventsTest : public MonitorTest {
protected:
    void events_on_with_tmux() { m_monitor.set_events(&m_owners, &m_dirs, &m_tmux); }

    static LockRecord pane_held(const std::string& worker, const std::string& pane,
                                std::vector<std::int64_t> pids) {
        LockRecord rec = record(worker, Verdict::held_by_session, 77, pane);
        rec.hold = TmuxHold{ServerRef{}, std::move(pids)};
        return rec;
    }

    // An ok answer listing pane `pane` with process `pid` (alive), from server 10.
    static std::vector<TmuxServerReport> answer_listing(const std::string& pane, std::int64_t pid) {
        TmuxFacts f = test::tmux_ok({}, {}, {pane});
        f.server_pid = 10;
        f.panes[pane].pid = pid;
        f.panes[pane].dead = false;
        return {TmuxServerReport{ServerRef{}, {}, f}};
    }

    FakeTmuxWatch m_tmux;
};

TEST_F(TmuxEventsTest, WatchedHoldsAreNotPolledButAskedAboutWhenAProcessExits) {
    events_on_with_tmux();
    first_pass({pane_held("/srv/a", "%3", {10, 500}), pane_held("/srv/b", "%4", {10, 501}),
                record("/srv/c", Verdict::live, 11)});
    EXPECT_EQ(m_tmux.watched, (std::set<std::int64_t>{10, 500, 501}));
    EXPECT_EQ(wake_in(), 30s) << "only the slow poll: a kill-session whose pane outlives it";

    m_clock.advance(1s);
    m_monitor.tmux_exited(500);
    EXPECT_EQ(wake_in(), 0ms);
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.session_waits.size(), 2u) << "tmux is asked about every waiting lock";
    // tmux has reaped the pane: %3 is gone, %4 listed.
    m_monitor.batch_done({}, test::tmux_ok({}, {}, {"%4"}), false, answer_listing("%4", 501));
    EXPECT_EQ(wake_in(), 30s) << "no retry: tmux no longer lists the process";
}

TEST_F(TmuxEventsTest, AProcessTmuxStillListsIsAskedAboutAgainSoonThenGivenUp) {
    events_on_with_tmux();
    first_pass({pane_held("/srv/a", "%3", {10, 500})});
    m_monitor.tmux_exited(500);
    std::chrono::milliseconds delay = 5ms;
    for (unsigned i = 0; i < 7; ++i) {
        batch_now();
        // tmux has not reaped it yet: still listed alive.
        m_monitor.batch_done({}, test::tmux_ok({}, {}, {"%3"}), false, answer_listing("%3", 500));
        EXPECT_EQ(wake_in(), delay) << "retry " << i;
        m_clock.advance(delay);
        delay *= 2;
    }
    batch_now();
    m_monitor.batch_done({}, test::tmux_ok({}, {}, {"%3"}), false, answer_listing("%3", 500));
    EXPECT_EQ(wake_in(), 30s) << "given up after 7 retries: the slow poll remains";
}

TEST_F(TmuxEventsTest, AFreshAnswerRefreshesWhatIsWatched) {
    events_on_with_tmux();
    first_pass({pane_held("/srv/a", "%3", {10, 500})});
    m_monitor.tmux_exited(10);
    batch_now();
    // The session got a new pane process (respawned): watch it, not the old one.
    m_monitor.batch_done({}, test::tmux_ok({}, {}, {"%3"}), false, answer_listing("%3", 600));
    EXPECT_EQ(m_tmux.watched, (std::set<std::int64_t>{10, 600}));
}

// `tmux kill-server`: the server closes its panes, then exits. A query that comes in between
// is answered "server exited unexpectedly" (unknown). The server's own exit, the moment every
// lock it held is free, must still be watched and asked about at once, not after the backoff.
TEST_F(TmuxEventsTest, AnUnknownAnswerLeavesWhatTheLastAnswerNamedWatched) {
    events_on_with_tmux();
    first_pass({pane_held("/srv/a", "%3", {10, 500})});
    m_monitor.tmux_exited(500); // the server closed the pane
    batch_now();
    const TmuxFacts closing = test::tmux_state(TmuxState::unknown, "server exited unexpectedly");
    m_monitor.batch_done({}, closing, false, {TmuxServerReport{ServerRef{}, {}, closing}});
    EXPECT_EQ(m_tmux.watched, (std::set<std::int64_t>{10, 500}));
    EXPECT_EQ(wake_in(), 5000ms) << "an unknown answer: the backoff";

    m_monitor.tmux_exited(10); // the server is gone
    EXPECT_EQ(wake_in(), 0ms) << "its exit is asked about at once";
    EXPECT_EQ(batch_now().session_waits.size(), 1u);
}

// The same when the lock itself is judged again meanwhile (its hold then names no process) or a
// pass judges it while tmux cannot be asked; an answer from a server that runs does replace them.
TEST_F(TmuxEventsTest, AHoldJudgedWithoutAnAnswerKeepsTheProcessesOfTheLast) {
    events_on_with_tmux();
    first_pass({pane_held("/srv/a", "%3", {10, 500})});
    LockRecord unanswered = record("/srv/a", Verdict::unknown, 77, "%3");
    unanswered.hold = TmuxHold{ServerRef{}, {}};
    m_monitor.batch_done({{found_check(unanswered), "inotify"}},
                         test::tmux_state(TmuxState::unknown, "server exited unexpectedly"), false);
    EXPECT_EQ(m_tmux.watched, (std::set<std::int64_t>{10, 500})) << "after a re-check";

    first_pass_again({unanswered});
    EXPECT_EQ(m_tmux.watched, (std::set<std::int64_t>{10, 500})) << "after a pass";

    LockRecord answered = record("/srv/a", Verdict::held_by_session, 77, "%3");
    answered.hold = TmuxHold{ServerRef{}, {11, 600}}; // a server started since
    first_pass_again({answered});
    EXPECT_EQ(m_tmux.watched, (std::set<std::int64_t>{11, 600}));

    TmuxHold elsewhere{ServerRef{}, {}};
    elsewhere.server.server.socket_path = "/run/other.sock"; // judged against another server
    unanswered.hold = elsewhere;
    first_pass_again({unanswered});
    EXPECT_TRUE(m_tmux.watched.empty()) << "another server's processes say nothing of this one";
}

TEST_F(TmuxEventsTest, HoldsThatCannotBeWatchedArePolledAsBefore) {
    events_on_with_tmux();
    m_tmux.unwatchable = {500};
    first_pass({pane_held("/srv/a", "%3", {10, 500})});
    EXPECT_EQ(wake_in(), 300ms) << "a PID without a pidfd";

    m_tmux.unwatchable.clear();
    first_pass_again({pane_held("/srv/a", "%3", {})});
    EXPECT_EQ(wake_in(), 300ms) << "a hold without PIDs (tmux gave none)";

    first_pass_again({record("/srv/a", Verdict::held_by_session, 77, "%3")});
    EXPECT_EQ(wake_in(), 300ms) << "no hold known at all";
}

TEST_F(TmuxEventsTest, WithoutATmuxWatchTmuxIsPolled) {
    events_on();
    first_pass({pane_held("/srv/a", "%3", {10, 500})});
    EXPECT_EQ(wake_in(), 300ms);
}

TEST(WorkersToRecheck, TheSessionsTmuxNoLongerHasAndThoseJudgedWithoutTmux) {
    const std::vector<SessionWait> waits = {
        {"/srv/a", "%3", false, {}}, {"/srv/b", "%4", false, {}}, {"/srv/c", "%5", true, {}}};
    EXPECT_EQ(workers_to_recheck(waits, test::tmux_ok({}, {}, {"%3", "%5"})),
              (std::vector<std::string>{"/srv/b", "/srv/c"}));
    EXPECT_TRUE(workers_to_recheck(waits, test::tmux_state(TmuxState::unknown)).empty())
        << "an unknown answer frees nothing";
    EXPECT_EQ(workers_to_recheck(waits, test::tmux_state(TmuxState::no_server)),
              (std::vector<std::string>{"/srv/a", "/srv/b", "/srv/c"}));
    // Another server answers on the socket: %3 may be its own, so every lock is judged again.
    EXPECT_EQ(workers_to_recheck(waits, test::tmux_ok({}, {}, {"%3", "%4", "%5"}), true),
              (std::vector<std::string>{"/srv/a", "/srv/b", "/srv/c"}));
    EXPECT_TRUE(workers_to_recheck(waits, test::tmux_state(TmuxState::unknown), true).empty());
}

TEST_F(MonitorTest, ALockLeftBecauseItChangedIsJudgedAgainOneIntervalLater) {
    events_on();
    first_pass({record("/srv/a", Verdict::stale, 10, "", LockAction::skipped_changed)});
    EXPECT_EQ(wake_in(), 30s);
    m_clock.advance(30s);
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.checks, (std::map<std::string, std::string>{{"/srv/a", "poll"}}));
    m_monitor.batch_done(
        {{found_check(record("/srv/a", Verdict::stale, 10, "", LockAction::skipped_changed)),
          "poll"}},
        std::nullopt, false);
    EXPECT_EQ(wake_in(), 30s) << "and again, while it keeps changing";
}

TEST_F(MonitorTest, OwnersWithoutAPidfdArePolledEveryInterval) {
    events_on();
    m_owners.unwatchable = {11};
    first_pass({record("/srv/a", Verdict::live, 10), record("/srv/b", Verdict::live, 11)});
    EXPECT_EQ(m_owners.unwatched(), std::set<std::string>{"/srv/b"});
    EXPECT_EQ(wake_in(), 30s);
    m_clock.advance(30s);
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.checks, (std::map<std::string, std::string>{{"/srv/b", "poll"}}));
}

// An agent holds w1 (watched), then takes w2 and dies. The judgement of w2 ran while the agent
// still lived ("alive") but is applied only after w1's exit was reported: the owner watch finds
// the owner already dead when asked to watch it, and w2 must be judged again at once, since a
// pidfd that has fired never fires again.
TEST_F(MonitorTest, ALockJudgedAliveJustBeforeItsOwnerDiedIsJudgedAgain) {
    events_on();
    first_pass({record("/srv/w1", Verdict::live, 10)});
    m_owners.dead = {10};
    m_monitor.owner_exited({"/srv/w1"});
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.checks.count("/srv/w1"), 1u);
    // w2's judgement (made while PID 10 still lived) comes back with w1's.
    m_monitor.batch_done(
        {{found_check(record("/srv/w1", Verdict::stale, 10, "", LockAction::removed)), "pidfd"},
         {found_check(record("/srv/w2", Verdict::live, 10)), "inotify"}},
        std::nullopt, false);
    EXPECT_EQ(wake_in(), 0ms);
    batch = batch_now();
    EXPECT_EQ(batch.checks, (std::map<std::string, std::string>{{"/srv/w2", "pidfd"}}))
        << "w2's owner is dead and nothing else will tell";
}

// The same through a full pass: a pass that judged an owner alive just before it died.
TEST_F(MonitorTest, APassThatJudgedAnOwnerAliveJustBeforeItDiedIsFollowedByARecheck) {
    events_on();
    m_owners.dead = {10};
    first_pass({record("/srv/w1", Verdict::live, 10), record("/srv/w2", Verdict::live, 11)});
    RecheckBatch batch = batch_now();
    EXPECT_EQ(batch.checks, (std::map<std::string, std::string>{{"/srv/w1", "pidfd"}}));
}

TEST_F(MonitorTest, WhenTheWatchLimitIsHitPassesPollAndNothingNewIsSearched) {
    events_on();
    auto work = m_monitor.next_work();
    ASSERT_TRUE(work);
    PassReport report = report_with({});
    const MonitorNews news = m_monitor.pass_done(&report, true);
    EXPECT_TRUE(news.inotify_exhausted);
    EXPECT_FALSE(m_monitor.inotify_on());
    EXPECT_TRUE(m_monitor.events_on()) << "pidfds still work";
    EXPECT_EQ(m_monitor.pass_period(), 30s);
    m_monitor.dir_events({{"/srv", WatchKind::dir, "rig2", IN_CREATE | IN_ISDIR}}, false);
    m_clock.advance(20ms);
    EXPECT_FALSE(m_monitor.next_work()) << "no scan without inotify";
}

TEST_F(MonitorTest, ARootThatCannotBeWalkedIsPolledEveryInterval) {
    events_on();
    auto work = m_monitor.next_work();
    ASSERT_TRUE(work);
    PassReport report = report_with({});
    report.roots[0].ok = false;
    report.roots[0].error = "open /srv: No such file or directory";
    m_monitor.pass_done(&report, false);
    EXPECT_EQ(m_monitor.pass_period(), 30s);
}

TEST_F(MonitorTest, EventsOffDropsWhatIsPendingAndStoppingHandsOutNothing) {
    events_on();
    first_pass({record("/srv/a", Verdict::held_by_session, 10, "s")});
    m_monitor.owner_exited({"/srv/a"});
    m_monitor.set_events(nullptr, nullptr);
    EXPECT_FALSE(m_monitor.events_on());
    EXPECT_FALSE(m_monitor.next_work()) << "the pending re-check and tmux poll are gone";
    EXPECT_EQ(wake_in(), 30s) << "only full passes remain, every polling period";

    m_monitor.request_pass();
    m_monitor.stop();
    EXPECT_FALSE(m_monitor.next_work());
    EXPECT_FALSE(m_monitor.next_wake());
}

TEST_F(MonitorTest, AFailedPassChangesNothingKnown) {
    events_on();
    first_pass({record("/srv/a", Verdict::live, 10)});
    m_monitor.request_pass();
    ASSERT_TRUE(m_monitor.next_work());
    m_monitor.pass_done(nullptr, false);
    EXPECT_NE(m_monitor.table().find("/srv/a"), nullptr);
    EXPECT_EQ(m_owners.owners.count("/srv/a"), 1u);
}

// A wall-clock step fed to the monitor: every later piece of work judges with it, and a lock
// written before it is no longer comparable by start time alone.
TEST_F(MonitorTest, AClockStepReachesEveryLaterJudgement) {
    events_on();
    first_pass({});
    const Timestamp written = std::chrono::sys_days{std::chrono::year{2026} / 12 / 7};
    EXPECT_FALSE(m_monitor.clock_facts().may_predate_a_step(written)) << "no step seen yet";
    m_monitor.clock_stepped(ClockStep{written + 10min, 60s});
    EXPECT_TRUE(m_monitor.clock_facts().may_predate_a_step(written));
    EXPECT_TRUE(m_monitor.clock_facts().may_predate_a_step(written + 9min))
        << "before the step, as the clock read before it was moved";
    EXPECT_FALSE(m_monitor.clock_facts().may_predate_a_step(written + 11min));
    ASSERT_TRUE(m_monitor.clock_facts().last_step);
    EXPECT_EQ(m_monitor.clock_facts().last_step->size, 60s);
}

// The owner judged alive is remembered with its start ticks, which do not move with the wall
// clock: after a step, the same PID with the same ticks is still that owner.
TEST_F(MonitorTest, TheOwnersJudgedAliveAreKnownByTheirStartTicks) {
    events_on();
    first_pass({record("/srv/a", Verdict::live, 10), record("/srv/b", Verdict::stale, 11),
                record("/srv/c", Verdict::held_by_session, 12, "%1")});
    const std::optional<KnownOwner> a = m_monitor.known_owner("/srv/a");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->pid, 10);
    EXPECT_EQ(a->start_ticks, 77u);
    EXPECT_FALSE(m_monitor.known_owner("/srv/b")) << "a dead owner is no one's";
    EXPECT_FALSE(m_monitor.known_owner("/srv/c"));
    EXPECT_FALSE(m_monitor.known_owner("/srv/none"));

    // Once its owner died and its lock went, nothing is known of it any more.
    m_monitor.owner_exited({"/srv/a"});
    batch_now();
    m_monitor.batch_done(
        {{found_check(record("/srv/a", Verdict::stale, 10, "", LockAction::removed)), "pidfd"}},
        std::nullopt, false);
    EXPECT_FALSE(m_monitor.known_owner("/srv/a")) << "its lock went";
}

} // namespace
} // namespace agentlock
