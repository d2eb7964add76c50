// End-to-end tests of agentlockd's events against the real binary: owner death (pidfd), lock and
// directory changes (inotify), ended tmux sessions (re-poll), the fallbacks, and --no-events.
// Passes are an hour apart (--interval and --full-pass-interval), so only an event can explain
// what happens; each test also checks the trigger the daemon names and that no pass ran
// meanwhile. Deadlines are generous and nothing is timed: the latency is only printed.

#include "daemon_fixture.hpp"
#include "e2e_support.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace agentlock::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::Child;
using test::dead_pid;
using test::exists;
using test::go_lock_json;
using test::local_hostname;
using test::make_dirs;
using test::spawn_sleeper;
using test::write_file;

// How long an event may take before the test calls it lost: far above the milliseconds it
// takes, far below the hour between passes.
constexpr auto k_deadline = 5s;

// Runs the daemon on what looks like a kernel without the system calls `calls` (comma-separated):
// each fails with ENOSYS (tests/support/without_syscalls.cpp).
std::vector<std::string> without_syscalls(const std::string& calls) {
    return {AGENTLOCK_WITHOUT_SYSCALLS, calls, "--"};
}

std::optional<long long> number(const LogEvent& ev, std::string_view key) {
    return int_of(ev.fields, key);
}

// The event's "ts" (RFC 3339 UTC with milliseconds) as a system_clock time.
std::optional<std::chrono::system_clock::time_point> event_time(const LogEvent& ev) {
    auto ts = ev.str("ts");
    if (!ts) {
        return std::nullopt;
    }
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(ts->c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return std::chrono::system_clock::from_time_t(::timegm(&tm)) + std::chrono::milliseconds(ms);
}

class Events : public DaemonFixture {
protected:
    Events() : DaemonFixture(8000) {}

    // A lock held by `pid`, acquired `age` ago on this host (hides WorkerRoot::put_lock).
    std::string put_lock(const std::string& name, long long pid, const std::string& session = "",
                         std::chrono::seconds age = 0s) {
        return WorkerRoot::put_lock(
            name, go_lock_json(pid, rfc3339_now(-age), session, local_hostname()));
    }

    // Passes an hour apart: only events act. Debug logs; `extra` is appended.
    std::vector<std::string> args(const std::vector<std::string>& extra = {}) const {
        std::vector<std::string> a{"--log-level", "debug"};
        a.insert(a.end(), extra.begin(), extra.end());
        return hourly_args(a);
    }

    // Starts the daemon with `a` (through `launcher`, if any) and waits for READY=1.
    DaemonProcess& start_ready(const std::vector<std::string>& a,
                               std::vector<std::string> launcher = {}) {
        DaemonSpec spec;
        spec.args = a;
        spec.launcher = std::move(launcher);
        DaemonProcess& d = start_daemon(std::move(spec));
        wait_ready(d);
        return d;
    }

    // Waits for the removal of `lock`, logged at index >= `from`.
    std::optional<LogEvent> removal(const std::string& lock, std::size_t from) {
        return m_daemon->wait_for_event("lock.removed", about_lock(lock), from, k_deadline);
    }

    // Passes completed at index >= `from` (none may explain an event-driven outcome).
    std::size_t passes_since(std::size_t from) {
        return m_daemon->find_events("pass.completed", nullptr, from).size();
    }

    // A re-check batch with `trigger` at index >= `from`.
    std::optional<LogEvent> checked(const std::string& trigger, std::size_t from) {
        return m_daemon->wait_for_event(
            "check.completed",
            [&trigger](const LogEvent& ev) {
                return ev.str("triggers").value_or("").find(trigger) != std::string::npos;
            },
            from, k_deadline);
    }

    void print_latency(const char* what, std::chrono::system_clock::time_point cause,
                       const LogEvent& effect) {
        auto t = event_time(effect);
        if (t) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*t - cause);
            std::cout << "[ latency  ] " << what << ": " << ms.count()
                      << " ms (log timestamps, millisecond resolution)\n";
        }
    }
};

// =============================================================================================
// (1) Owner death: a pidfd per live owner

TEST_F(Events, ALiveOwnerKilledHasItsLockRemovedAtOnce) {
    Child owner = spawn_sleeper();
    Child both = spawn_sleeper();
    std::string lock = put_lock("w1", owner.pid());
    std::string a = put_lock("dup-a", both.pid());
    std::string b = put_lock("dup-b", both.pid());
    DaemonProcess& d = start_ready(args());
    auto started = d.wait_for_event("events.started");
    ASSERT_TRUE(started) << d.tail();
    EXPECT_EQ(started->str("pidfd"), "on") << started->dump();
    EXPECT_EQ(started->str("inotify"), "on") << started->dump();
    EXPECT_EQ(number(*started, "pidfds"), 2) << "one pidfd per PID: " << started->dump();
    EXPECT_EQ(d.find_events("collision.duplicate_pid").size(), 1u) << d.tail();

    std::size_t mark = d.event_count();
    const auto killed = std::chrono::system_clock::now();
    owner.kill_and_reap();
    auto removed = removal(lock, mark);
    ASSERT_TRUE(removed) << "the dead owner's lock is still there";
    EXPECT_FALSE(exists(lock));
    EXPECT_EQ(removed->str("trigger"), "pidfd") << removed->dump();
    EXPECT_EQ(removed->str("verdict"), "stale") << removed->dump();
    // The daemon may see the owner as a zombie before the test reaps it: both mean dead.
    EXPECT_TRUE(removed->str("pid_state") == "dead" || removed->str("pid_state") == "zombie")
        << removed->dump();
    EXPECT_FALSE(removed->str("content").value_or("").empty()) << removed->dump();
    EXPECT_EQ(passes_since(mark), 0u) << "a pass ran: the test proves nothing";
    print_latency("owner killed -> lock.removed", killed, *removed);

    // One PID holding two workers: both go, and the duplicate claim resolves.
    mark = d.event_count();
    both.kill_and_reap();
    ASSERT_TRUE(removal(a, mark)) << d.tail();
    ASSERT_TRUE(removal(b, mark)) << d.tail();
    auto resolved = d.wait_for_event(
        "collision.duplicate_pid", [](const LogEvent& ev) { return ev.str("state") == "resolved"; },
        mark, k_deadline);
    EXPECT_TRUE(resolved) << d.tail();
    EXPECT_EQ(passes_since(mark), 0u);
    EXPECT_TRUE(d.running());
}

TEST_F(Events, ALiveLockIsNeverRemovedWhenItsOwnerRewritesIt) {
    Child owner = spawn_sleeper();
    std::string lock = put_lock("w1", owner.pid());
    DaemonProcess& d = start_ready(args());
    std::size_t mark = d.event_count();
    put_lock("w1", owner.pid()); // the agent refreshes its lock
    ASSERT_TRUE(checked("inotify", mark)) << d.tail();
    EXPECT_TRUE(exists(lock));
    EXPECT_TRUE(d.find_events("lock.removed").empty()) << d.tail();
}

// =============================================================================================
// (2) Lock changes and new directories: inotify

TEST_F(Events, ALockCreatedAfterStartUpIsFoundAndRemovedWhenItsOwnerDies) {
    make_dirs(worker("w1/.runtime"));
    DaemonProcess& d = start_ready(args());
    std::size_t mark = d.event_count();

    // A stale lock appears: judged and removed at once.
    std::string stale = put_lock("w1", dead_pid());
    auto removed = removal(stale, mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "inotify") << removed->dump();

    // A live agent takes the worker: its lock is judged (kept), its owner watched; it dies.
    mark = d.event_count();
    Child owner = spawn_sleeper();
    std::string lock = put_lock("w1", owner.pid());
    ASSERT_TRUE(checked("inotify", mark)) << d.tail();
    EXPECT_TRUE(exists(lock));
    const auto killed = std::chrono::system_clock::now();
    owner.kill_and_reap();
    removed = removal(lock, mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "pidfd") << removed->dump();
    EXPECT_EQ(passes_since(mark), 0u);
    print_latency("owner of a lock created after start-up killed -> lock.removed", killed,
                  *removed);
}

TEST_F(Events, NewWorkerDirectoriesAreFound) {
    DaemonProcess& d = start_ready(args());
    std::size_t mark = d.event_count();

    // A whole new rig, created in one go with its lock.
    const auto created = std::chrono::system_clock::now();
    std::string deep = put_lock("rig/polecats/w7", dead_pid());
    auto removed = removal(deep, mark);
    ASSERT_TRUE(removed) << "a lock in a new directory tree was not found\n" << d.tail();
    EXPECT_EQ(removed->str("trigger"), "inotify") << removed->dump();
    print_latency("new worker tree created -> lock.removed", created, *removed);

    // A new worker directory first, its .runtime and lock later (watched meanwhile).
    std::size_t before_dir = d.event_count();
    make_dirs(worker("rig/polecats/w8"));
    ASSERT_TRUE(d.wait_for_event(
        "check.completed", [](const LogEvent& ev) { return number(ev, "scans").value_or(0) > 0; },
        before_dir, k_deadline))
        << "the new directory was not searched\n"
        << d.tail();
    make_dirs(worker("rig/polecats/w8/.runtime"));
    std::string later = put_lock("rig/polecats/w8", dead_pid());
    ASSERT_TRUE(removal(later, mark)) << d.tail();

    // An atomic writer: a temporary file renamed over agent.lock.
    make_dirs(worker("rig/polecats/w9/.runtime"));
    std::string tmp = worker("rig/polecats/w9/.runtime/agent.lock.tmp");
    write_file(tmp, go_lock_json(dead_pid(), rfc3339_now(-1s), "", local_hostname()));
    std::filesystem::rename(tmp, lock_path("rig/polecats/w9"));
    ASSERT_TRUE(removal(lock_path("rig/polecats/w9"), mark)) << d.tail();
    EXPECT_EQ(passes_since(mark), 0u);

    // A pruned directory is not searched: a pass would not look there either.
    std::string pruned = put_lock("rig/node_modules/w", dead_pid());
    std::string sentinel = put_lock("rig/polecats/w10", dead_pid());
    ASSERT_TRUE(removal(sentinel, mark)) << d.tail();
    EXPECT_TRUE(exists(pruned));
}

TEST_F(Events, ARemovedLockResolvesItsFinding) {
    Child owner = spawn_sleeper();
    std::string lock = put_lock("w1", owner.pid(), "no-such-session"); // orphaned
    DaemonProcess& d = start_ready(args());
    ASSERT_TRUE(d.wait_for_event("lock.orphaned")) << d.tail();
    std::size_t mark = d.event_count();
    std::filesystem::remove(lock); // the agent released it
    auto resolved = d.wait_for_event(
        "lock.orphaned", [](const LogEvent& ev) { return ev.str("state") == "resolved"; }, mark,
        k_deadline);
    ASSERT_TRUE(resolved) << d.tail();
    EXPECT_EQ(resolved->str("now"), "gone") << resolved->dump();
    EXPECT_EQ(passes_since(mark), 0u);
}

// =============================================================================================
// (3) and (4) tmux sessions

TEST_F(Events, AHeldBySessionLockGoesWhenItsSessionEnds) {
    m_tmux.new_session("agent-x");
    std::string lock = put_lock("w1", dead_pid(), "agent-x", 5s);
    DaemonProcess& d = start_ready(args());
    auto held = d.wait_for_event("lock.held_by_session");
    ASSERT_TRUE(held) << d.tail();
    EXPECT_EQ(held->str("state"), "appeared");

    std::size_t mark = d.event_count();
    const auto ended = std::chrono::system_clock::now();
    m_tmux.kill_session("agent-x");
    auto removed = removal(lock, mark);
    ASSERT_TRUE(removed) << "the session ended but its lock stayed\n" << d.tail();
    EXPECT_EQ(removed->str("trigger"), "tmux") << removed->dump();
    EXPECT_EQ(removed->str("tmux_state"), "ok") << removed->dump();
    EXPECT_EQ(passes_since(mark), 0u);
    print_latency("tmux session killed -> lock.removed", ended, *removed);
    auto resolved = d.find_events("lock.held_by_session",
                                  [](const LogEvent& ev) { return ev.str("state") == "resolved"; });
    ASSERT_EQ(resolved.size(), 1u) << d.tail();
    EXPECT_EQ(resolved[0].str("now"), "removed");
}

TEST_F(Events, AnOwnerThatDiesWhileItsSessionLivesKeepsItsLock) {
    m_tmux.new_session("agent-y");
    Child owner = spawn_sleeper();
    std::string lock = put_lock("w1", owner.pid(), "agent-y");
    DaemonProcess& d = start_ready(args());
    std::size_t mark = d.event_count();
    owner.kill_and_reap();
    auto held = d.wait_for_event("lock.held_by_session", nullptr, mark, k_deadline);
    ASSERT_TRUE(held) << "the owner's death was not seen\n" << d.tail();
    EXPECT_EQ(held->str("pid_state"), "dead") << held->dump();

    // Nothing changes: the session's processes are watched, so tmux is not asked again (the
    // old daemon asked every 300 ms: five times in this wait) and the lock stays.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_TRUE(d.find_events("tmux.polled", nullptr, held->index).empty()) << d.tail();
    EXPECT_TRUE(exists(lock));
    EXPECT_TRUE(d.find_events("lock.removed").empty()) << d.tail();

    // The session ends: now it goes (so this test can tell a daemon that never acts).
    mark = d.event_count();
    m_tmux.kill_session("agent-y");
    auto removed = removal(lock, mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "tmux") << removed->dump();
    EXPECT_EQ(passes_since(mark), 0u);
}

// gastown's pattern: the lock's PID (gt prime's) is dead from the start and its session_id is
// the agent's pane ("%N"). The pane's process and the server are watched with pidfds: tmux is
// asked when one of them exits, not on a timer.
TEST_F(Events, APaneHeldLockGoesWhenThePanesProcessExitsWithoutPolling) {
    m_tmux.new_session("town-a");
    m_tmux.new_session("town-b");
    const std::string pane_a = m_tmux.pane_of("town-a");
    const std::string pane_b = m_tmux.pane_of("town-b");
    std::string lock_a = put_lock("wa", dead_pid(), pane_a);
    std::string lock_b = put_lock("wb", dead_pid(), pane_b);
    DaemonProcess& d = start_ready(args());
    auto started = d.wait_for_event("events.started");
    ASSERT_TRUE(started) << d.tail();
    EXPECT_EQ(started->fields.at("tmux_pidfds").as_int64(), 3) << "two panes and the server\n"
                                                               << started->dump();

    // Nothing changes: tmux is not asked again, and both locks stay.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_TRUE(d.find_events("tmux.polled").empty()) << d.tail();

    const std::size_t mark = d.event_count();
    ASSERT_EQ(::kill(m_tmux.pane_pid("town-a"), SIGKILL), 0);
    auto removed = removal(lock_a, mark);
    ASSERT_TRUE(removed) << "the pane's process exited but its lock stayed\n" << d.tail();
    EXPECT_EQ(removed->str("trigger"), "tmux") << removed->dump();
    EXPECT_FALSE(d.find_events("tmux.process_exited", nullptr, mark).empty()) << d.tail();
    EXPECT_EQ(passes_since(mark), 0u);
    EXPECT_TRUE(exists(lock_b)) << "the other pane lives: its lock stays\n" << d.tail();

    // The server exits: the last lock goes with it.
    const std::size_t mark2 = d.event_count();
    m_tmux.kill_server();
    auto gone = removal(lock_b, mark2);
    ASSERT_TRUE(gone) << "the tmux server exited but the lock stayed\n" << d.tail();
    EXPECT_EQ(gone->str("trigger"), "tmux") << gone->dump();
    EXPECT_EQ(passes_since(mark2), 0u);
}

// kill-session of a pane whose process ignores SIGHUP ends the pane but no process: only the
// slow poll (every interval while every hold is watched) tells, and it does.
TEST_F(Events, AKilledSessionWhosePaneIgnoresSighupIsFoundByTheSlowPoll) {
    auto r = m_tmux.tmux("new-session -d -s stubborn -P -F '#{pane_id}' "
                         "\"sh -c 'trap \\\"\\\" HUP; while :; do sleep 1; done'\"");
    ASSERT_EQ(r.status, 0) << r.out;
    const std::string pane = r.out.substr(0, r.out.find_first_of(" \n"));
    std::string lock = put_lock("w1", dead_pid(), pane);
    DaemonProcess& d = start_ready(args({"--interval", "2s"}));
    ASSERT_TRUE(d.wait_for_event("lock.held_by_session")) << d.tail();
    const pid_t shell = m_tmux.pane_pid("stubborn");

    const std::size_t mark = d.event_count();
    m_tmux.kill_session("stubborn");
    auto removed = removal(lock, mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "tmux") << removed->dump();
    EXPECT_EQ(::kill(shell, 0), 0) << "the pane's process was meant to outlive its session";
    ::kill(shell, SIGKILL);
}

TEST_F(Events, TheTmuxRepollRunsOnlyWhileALockWaitsOnASession) {
    Child owner = spawn_sleeper();
    put_lock("w1", owner.pid());
    DaemonProcess& d = start_ready(args());
    // A stale lock appearing and going shows the daemon is busy with events meanwhile.
    std::size_t mark = d.event_count();
    std::string stale = put_lock("w2", dead_pid());
    ASSERT_TRUE(removal(stale, mark)) << d.tail();
    std::string stale2 = put_lock("w3", dead_pid());
    ASSERT_TRUE(removal(stale2, mark)) << d.tail();
    EXPECT_TRUE(d.find_events("tmux.polled").empty()) << "nothing waits on a session";
}

// =============================================================================================
// (5) --no-events: nothing happens until the poll

TEST_F(Events, WithoutEventsOnlyThePollActs) {
    Child owner = spawn_sleeper();
    std::string lock = put_lock("w1", owner.pid());
    DaemonProcess& d =
        start_ready({"--config", m_config, "--root", m_root, "--tmux-socket", m_tmux.socket_name(),
                     "--log-format", "json", "--log-level", "debug", "--interval", "1s",
                     "--full-pass-interval", "1h", "--no-events"});
    auto started = d.wait_for_event("daemon.started");
    ASSERT_TRUE(started) << d.tail();
    EXPECT_EQ(started->str("events"), "false") << started->dump();
    EXPECT_TRUE(d.find_events("events.started").empty());

    std::size_t mark = d.event_count();
    owner.kill_and_reap();
    std::string stale = put_lock("w2", dead_pid());
    auto first = removal(lock, mark);
    auto second = removal(stale, mark);
    ASSERT_TRUE(first && second) << d.tail();
    EXPECT_EQ(first->str("trigger"), "pass") << first->dump();
    EXPECT_EQ(second->str("trigger"), "pass") << second->dump();
    // Each removal belongs to a pass: a pass.completed follows it before any other removal.
    for (const LogEvent* r : {&*first, &*second}) {
        auto pass = d.wait_for_event("pass.completed", nullptr, r->index, k_deadline);
        ASSERT_TRUE(pass) << d.tail();
    }
    EXPECT_TRUE(d.find_events("check.completed").empty()) << d.tail();
    EXPECT_TRUE(d.find_events("owner.exited").empty()) << d.tail();
}

// =============================================================================================
// (6) Fallbacks, on a kernel that lacks pidfd_open or inotify (without_syscalls): logged once,
// polling instead

TEST_F(Events, WithoutPidfdOwnersArePolledAndTheFallbackIsLoggedOnce) {
    Child a = spawn_sleeper();
    Child b = spawn_sleeper();
    std::string la = put_lock("w1", a.pid());
    std::string lb = put_lock("w2", b.pid());
    DaemonProcess& d = start_ready({"--config", m_config, "--root", m_root, "--tmux-socket",
                                    m_tmux.socket_name(), "--log-format", "json", "--log-level",
                                    "debug", "--interval", "500ms", "--full-pass-interval", "1h"},
                                   without_syscalls("pidfd_open"));
    auto started = d.wait_for_event("events.started");
    ASSERT_TRUE(started) << d.tail();
    EXPECT_EQ(started->str("pidfd"), "off") << started->dump();
    EXPECT_EQ(number(*started, "polled_owners"), 2) << started->dump();

    std::size_t mark = d.event_count();
    a.kill_and_reap();
    auto ra = removal(la, mark);
    ASSERT_TRUE(ra) << d.tail();
    EXPECT_EQ(ra->str("trigger"), "poll") << ra->dump();
    b.kill_and_reap();
    auto rb = removal(lb, mark);
    ASSERT_TRUE(rb) << d.tail();
    EXPECT_EQ(rb->str("trigger"), "poll") << rb->dump();
    // inotify still works, and passes stay an hour apart.
    std::string stale = put_lock("w3", dead_pid());
    auto rs = removal(stale, mark);
    ASSERT_TRUE(rs) << d.tail();
    EXPECT_EQ(rs->str("trigger"), "inotify") << rs->dump();
    EXPECT_EQ(passes_since(mark), 0u);

    auto degraded = d.find_events("events.degraded");
    ASSERT_EQ(degraded.size(), 1u) << "logged once\n" << d.tail();
    EXPECT_EQ(degraded[0].str("source"), "pidfd") << degraded[0].dump();
    // The kernel said ENOSYS to pidfd_open, and the reason says so.
    const std::string reason = degraded[0].str("reason").value_or("");
    EXPECT_NE(reason.find("pidfd_open"), std::string::npos) << degraded[0].dump();
    EXPECT_NE(reason.find(std::strerror(ENOSYS)), std::string::npos) << degraded[0].dump();
    EXPECT_EQ(degraded[0].str("level"), "warn") << degraded[0].dump();
    EXPECT_FALSE(degraded[0].str("fallback").value_or("").empty()) << degraded[0].dump();
}

TEST_F(Events, WithoutInotifyPassesPollAtTheIntervalAndPidfdStillWorks) {
    Child owner = spawn_sleeper();
    std::string lock = put_lock("w1", owner.pid());
    DaemonProcess& d = start_ready({"--config", m_config, "--root", m_root, "--tmux-socket",
                                    m_tmux.socket_name(), "--log-format", "json", "--log-level",
                                    "debug", "--interval", "500ms", "--full-pass-interval", "1h"},
                                   without_syscalls("inotify_init1,inotify_init"));
    std::size_t mark = d.event_count();
    std::string stale = put_lock("w2", dead_pid());
    auto rs = removal(stale, mark);
    ASSERT_TRUE(rs) << d.tail();
    EXPECT_EQ(rs->str("trigger"), "pass")
        << "found by a pass at the short interval: " << rs->dump();
    mark = d.event_count();
    owner.kill_and_reap();
    auto rl = removal(lock, mark);
    ASSERT_TRUE(rl) << d.tail();
    EXPECT_TRUE(rl->str("trigger") == "pidfd" || rl->str("trigger") == "pass") << rl->dump();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 2, mark, k_deadline)) << d.tail();
    auto degraded = d.find_events("events.degraded");
    ASSERT_EQ(degraded.size(), 1u) << d.tail();
    EXPECT_EQ(degraded[0].str("source"), "inotify") << degraded[0].dump();
    const std::string reason = degraded[0].str("reason").value_or("");
    EXPECT_NE(reason.find("inotify_init1"), std::string::npos) << degraded[0].dump();
    EXPECT_NE(reason.find(std::strerror(ENOSYS)), std::string::npos) << degraded[0].dump();
    EXPECT_FALSE(degraded[0].str("fallback").value_or("").empty()) << degraded[0].dump();
}

// =============================================================================================
// (7) A reused PID

TEST_F(Events, ALockForAPidThatStartedAfterItWasAcquiredIsStaleAtOnce) {
    // The PID is alive, but its process started after the lock was acquired: reused.
    Child impostor = spawn_sleeper();
    DaemonProcess& d = start_ready(args());
    std::size_t mark = d.event_count();
    std::string lock = put_lock("w1", impostor.pid(), "", 3600s);
    auto removed = removal(lock, mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "inotify") << removed->dump();
    EXPECT_NE(removed->str("reason").value_or("").find("reused"), std::string::npos)
        << removed->dump();
    EXPECT_EQ(removed->str("pid_state"), "alive") << removed->dump();
}

// =============================================================================================
// A reload turns events off and on

TEST_F(Events, AReloadTurnsEventsOffAndOn) {
    auto config = [this](bool events) {
        write_file(m_dir + "/events.json",
                   "{\"roots\": [\"" + m_root + "\"], \"tmux_socket\": \"" + m_tmux.socket_name() +
                       "\", \"interval\": \"1h\", \"full_pass_interval\": \"1h\", "
                       "\"log_format\": \"json\", \"log_level\": \"debug\", \"events\": " +
                       (events ? "true" : "false") + "}\n");
    };
    config(false);
    Child first = spawn_sleeper();
    std::string lock1 = put_lock("w1", first.pid());
    DaemonProcess& d = start_ready({"--config", m_dir + "/events.json"});
    EXPECT_TRUE(d.find_events("events.started").empty()) << d.tail();

    // On: the reload brings a full pass (to watch what is there), then events act.
    first.kill_and_reap();
    std::size_t mark = d.event_count();
    config(true);
    d.send_signal(SIGHUP);
    auto r1 = removal(lock1, mark);
    ASSERT_TRUE(r1) << d.tail();
    EXPECT_EQ(r1->str("trigger"), "pass") << "the owner died while events were off";
    ASSERT_TRUE(d.wait_for_event("events.started", nullptr, mark, k_deadline)) << d.tail();
    Child second = spawn_sleeper();
    mark = d.event_count();
    std::string lock2 = put_lock("w2", second.pid());
    ASSERT_TRUE(checked("inotify", mark)) << d.tail();
    second.kill_and_reap();
    auto r2 = removal(lock2, mark);
    ASSERT_TRUE(r2) << d.tail();
    EXPECT_EQ(r2->str("trigger"), "pidfd") << r2->dump();

    // Off again: nothing but a pass removes anything.
    Child third = spawn_sleeper();
    std::string lock3 = put_lock("w3", third.pid());
    ASSERT_TRUE(checked("inotify", mark)) << d.tail();
    mark = d.event_count();
    config(false);
    d.send_signal(SIGHUP);
    ASSERT_TRUE(d.wait_for_event("config.reloaded", nullptr, mark, k_deadline)) << d.tail();
    // A batch of re-checks already running when the reload came (the echo of the daemon's own
    // removal of w2's lock, say) still ends and logs. A pass starts only once it has: from the end
    // of that pass on, nothing but passes may run.
    d.send_signal(SIGUSR1);
    ASSERT_TRUE(d.wait_for_event("pass.completed", nullptr, mark, k_deadline)) << d.tail();
    mark = d.event_count();
    third.kill_and_reap();
    std::string stale = put_lock("w4", dead_pid());
    d.send_signal(SIGUSR1);
    auto r3 = removal(lock3, mark);
    auto r4 = removal(stale, mark);
    ASSERT_TRUE(r3 && r4) << d.tail();
    EXPECT_EQ(r3->str("trigger"), "pass") << r3->dump();
    EXPECT_EQ(r4->str("trigger"), "pass") << r4->dump();
    EXPECT_TRUE(d.find_events("check.completed", nullptr, mark).empty()) << d.tail();
}

// =============================================================================================
// Stopping, and the root going away

TEST_F(Events, SigtermWithOwnersWatchedExitsZero) {
    std::vector<Child> owners;
    for (int i = 0; i < 5; ++i) {
        owners.push_back(spawn_sleeper());
        put_lock("w" + std::to_string(i), owners.back().pid());
    }
    DaemonProcess& d = start_ready(args());
    ASSERT_TRUE(d.wait_for_event("events.started")) << d.tail();
    d.send_signal(SIGTERM);
    auto st = d.wait_exit();
    ASSERT_TRUE(st) << d.tail();
    EXPECT_TRUE(st->exited && st->code == 0) << st->describe();
}

TEST_F(Events, ARemovedRootIsReportedAtOnce) {
    DaemonProcess& d = start_ready(args());
    std::size_t mark = d.event_count();
    std::filesystem::remove_all(m_root);
    auto gone = d.wait_for_event("root.unavailable", nullptr, mark, k_deadline);
    ASSERT_TRUE(gone) << d.tail();
    // Back: polled at the interval while a root is missing... which is an hour here, so a
    // SIGUSR1 pass brings it back, with watches.
    make_dirs(m_root);
    d.send_signal(SIGUSR1);
    ASSERT_TRUE(d.wait_for_event("root.recovered", nullptr, mark, k_deadline)) << d.tail();
    mark = d.event_count();
    std::string stale = put_lock("w1", dead_pid());
    auto removed = removal(stale, mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("trigger"), "inotify") << removed->dump();
}

} // namespace
} // namespace agentlock::e2e
