// Issue 14: a clock step never makes a live agent look dead. The clock-step watcher (its offset
// arithmetic with an injected clock, its timerfd for real), and the measured case end to
// end: a live `sleep` whose Go-style lock reads acquired_at 60 s before the process started,
// judged through a process probe whose /proc root is a prepared copy of the real one.

#include <agentlock/clock_watch.hpp>
#include <agentlock/pass.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/verdict.hpp>

#include "e2e_support.hpp"
#include "fakes.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/timex.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

// --- the watcher ------------------------------------------------------------------------------

class FakeClockReader final : public ClockReader {
public:
    std::chrono::nanoseconds realtime() override { return real; }
    std::chrono::nanoseconds boottime() override { return boot; }
    std::chrono::nanoseconds real = 1'800'000'000s;
    std::chrono::nanoseconds boot = 600s;
};

// Whether `fd` turns readable within `timeout`.
bool readable_within(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    return n == 1 && (p.revents & POLLIN) != 0;
}

std::optional<ClockStep> checked(ClockWatch& watch) {
    auto step = watch.check();
    EXPECT_TRUE(step.ok()) << (step.ok() ? "" : step.error().message);
    return step.ok() ? *step : std::nullopt;
}

TEST(ClockStep, SizeIsTheChangeOfTheWallOffset) {
    const Timestamp now{1'800'000'060s};
    const ClockStep step = step_between(1'799'999'400s, 1'799'999'460s, now);
    EXPECT_EQ(step.size, 60s);
    EXPECT_EQ(step.at, now);
    EXPECT_EQ(step.before(), Timestamp{1'800'000'000s});
    EXPECT_EQ(step_between(100s, 40s, now).size, -60s);
}

TEST(ClockWatch, AnOffsetDriftCountsAsAStepOnlyFromTheThreshold) {
    FakeClockReader clocks;
    auto opened = ClockWatch::open(clocks);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    ClockWatch& watch = *opened;
    EXPECT_FALSE(checked(watch));
    // Time passing moves both clocks alike: no step.
    clocks.real += 5s;
    clocks.boot += 5s;
    EXPECT_FALSE(checked(watch));
    // A drift just under the threshold is not one.
    clocks.real += k_offset_drift_as_step - 1ns;
    EXPECT_FALSE(checked(watch));
    clocks.real += 1ns;
    auto step = checked(watch);
    ASSERT_TRUE(step);
    EXPECT_EQ(step->size, k_offset_drift_as_step);
    EXPECT_EQ(step->at, Timestamp(clocks.real));
    // Measured from the offset last seen: not counted twice.
    EXPECT_FALSE(checked(watch));
    clocks.real -= 60s;
    step = checked(watch);
    ASSERT_TRUE(step);
    EXPECT_EQ(step->size, -60s);
    EXPECT_EQ(step->before(), Timestamp(clocks.real + 60s));
}

TEST(ClockWatch, TheFdStaysQuietWhileTheClockIsNotSet) {
    auto opened = ClockWatch::open();
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_GE(opened->fd(), 0);
    EXPECT_FALSE(readable_within(opened->fd(), 300ms));
    EXPECT_FALSE(checked(*opened));
    EXPECT_FALSE(readable_within(opened->fd(), 0ms));
}

// Steps CLOCK_REALTIME by `delta` exactly (ADJ_SETOFFSET), or returns the errno.
int step_clock(std::chrono::nanoseconds delta) {
    timex tx{};
    tx.modes = ADJ_SETOFFSET | ADJ_NANO;
    auto secs = std::chrono::floor<std::chrono::seconds>(delta);
    tx.time.tv_sec = static_cast<time_t>(secs.count());
    tx.time.tv_usec = static_cast<suseconds_t>((delta - secs).count()); // ns under ADJ_NANO
    return ::adjtimex(&tx) < 0 ? errno : 0;
}

// Steps the real clock by +50 ms and back at once (the machine's clock ends where it would
// have been), and checks the watcher sees both steps with their sizes.
TEST(ClockWatch, ARealStepIsSeenAndMeasured) {
    auto opened = ClockWatch::open();
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    ClockWatch& watch = *opened;
    const auto delta = 50ms;
    const int err = step_clock(delta);
    if (err == EPERM) {
        GTEST_SKIP() << "stepping CLOCK_REALTIME needs CAP_SYS_TIME";
    }
    ASSERT_EQ(err, 0) << std::strerror(err);
    const bool seen = readable_within(watch.fd(), 2000ms);
    const auto forward = watch.check();
    const int back_err = step_clock(-delta); // before any assertion can return
    ASSERT_EQ(back_err, 0) << "the clock was left 50 ms ahead: " << std::strerror(back_err);
    EXPECT_TRUE(seen);
    ASSERT_TRUE(forward.ok()) << forward.error().message;
    ASSERT_TRUE(*forward);
    EXPECT_GT((*forward)->size, delta - 5ms);
    EXPECT_LT((*forward)->size, delta + 5ms);

    EXPECT_TRUE(readable_within(watch.fd(), 2000ms));
    auto backward = checked(watch);
    ASSERT_TRUE(backward);
    EXPECT_GT(backward->size, -delta - 5ms);
    EXPECT_LT(backward->size, -delta + 5ms);
    // Re-armed: quiet again.
    EXPECT_FALSE(readable_within(watch.fd(), 100ms));
    EXPECT_FALSE(checked(watch));
}

// agentlockd sees a step of the wall clock while it runs and logs each one with its size: a
// step forward, then the same step back (so the machine's clock ends where it would have been).
TEST(ClockWatch, TheDaemonLogsTheStepsItSees) {
    TempDir dir;
    test::make_dirs(dir.sub("root"));
    e2e::DaemonSpec spec;
    spec.args = {"--root",
                 dir.sub("root"),
                 "--log-format",
                 "json",
                 "--tmux-socket",
                 "agentlock-test-none-" + std::to_string(::getpid()),
                 "--full-pass-interval",
                 "1h"};
    e2e::DaemonProcess d(dir.path(), spec);
    ASSERT_TRUE(d.wait_for_event("pass.completed")) << d.tail();
    const auto delta = 50ms;
    const int err = step_clock(delta);
    if (err == EPERM) {
        GTEST_SKIP() << "stepping CLOCK_REALTIME needs CAP_SYS_TIME";
    }
    ASSERT_EQ(err, 0) << std::strerror(err);
    const auto forward = d.wait_for_event("clock.stepped", nullptr, 0, 5s);
    const std::size_t mark = d.event_count();
    const int back_err = step_clock(-delta); // before any assertion can return
    ASSERT_EQ(back_err, 0) << "the clock was left 50 ms ahead: " << std::strerror(back_err);
    ASSERT_TRUE(forward) << d.tail();
    const long long size = std::stoll(forward->str("size_ms").value_or("0"));
    EXPECT_GE(size, 45) << forward->dump();
    EXPECT_LE(size, 55) << forward->dump();
    EXPECT_TRUE(forward->str("at")) << forward->dump();
    const auto backward = d.wait_for_event("clock.stepped", nullptr, mark, 5s);
    ASSERT_TRUE(backward) << d.tail();
    const long long back = std::stoll(backward->str("size_ms").value_or("0"));
    EXPECT_LE(back, -45) << backward->dump();
    EXPECT_GE(back, -55) << backward->dump();
    EXPECT_TRUE(d.find_events("clock.unwatched").empty()) << d.tail();
}

// --- the measured case, end to end -------------------------------------------------------------

constexpr std::uint64_t k_pid_max = 32768;

std::string replace_processes_line(const std::string& stat, std::uint64_t forks) {
    std::istringstream in(stat);
    std::string out;
    std::string line;
    bool replaced = false;
    while (std::getline(in, line)) {
        if (line.rfind("processes ", 0) == 0) {
            line = "processes " + std::to_string(forks);
            replaced = true;
        }
        out += line + "\n";
    }
    if (!replaced) {
        throw std::runtime_error("no processes line in /proc/stat");
    }
    return out;
}

class MeasuredCase : public ::testing::Test {
protected:
    void SetUp() override {
        m_host = read_host_facts();
        m_options.roots = {m_dir.sub("root")};
        m_options.dry_run = true;
        const std::string pid = std::to_string(m_sleep.pid());
        test::write_file(proc("/" + pid + "/stat"), test::read_file("/proc/" + pid + "/stat"));
        test::write_file(proc("/sys/kernel/pid_max"), std::to_string(k_pid_max) + "\n");
        const ProcessFacts owner = SystemProcessProbe(proc("")).probe(m_sleep.pid());
        ASSERT_EQ(owner.state, ProcessState::alive) << owner.detail;
        ASSERT_TRUE(owner.start_time && owner.start_ticks) << owner.detail;
        m_start_ticks = *owner.start_ticks;
        // Go's writer: no start ticks, no boot id; acquired_at 60 s before the process started,
        // as a forward step of the wall clock by 60 s since the lock was written leaves it.
        test::write_file(lock_path(),
                         test::go_lock_json(m_sleep.pid(), format_rfc3339(*owner.start_time - 60s),
                                            "", m_host.hostname));
    }

    std::string proc(const std::string& rel) const { return m_dir.sub("proc") + rel; }
    std::string worker() const { return m_dir.sub("root/agents/w1"); }
    std::string lock_path() const { return worker() + "/.runtime/agent.lock"; }
    void set_forks(std::uint64_t forks) {
        test::write_file(proc("/stat"),
                         replace_processes_line(test::read_file("/proc/stat"), forks));
    }
    // The lock judged by check_worker and by run_pass, which must agree.
    Judgement judge() {
        SystemProcessProbe processes(proc(""));
        WorkerCheck check = check_worker(worker(), m_options, processes, m_tmux, m_host);
        EXPECT_EQ(check.state, WorkerCheck::State::found) << check.error;
        PassReport report = run_pass(m_options, processes, m_tmux, m_host);
        EXPECT_EQ(report.locks.size(), 1u);
        if (check.state != WorkerCheck::State::found || report.locks.size() != 1) {
            return {};
        }
        const LockRecord& rec = report.locks.front();
        EXPECT_EQ(rec.judgement.verdict, check.record.judgement.verdict) << rec.judgement.reason;
        EXPECT_EQ(rec.action, check.record.action);
        const LockAction expected =
            is_removable(rec.judgement.verdict) ? LockAction::would_remove : LockAction::kept;
        EXPECT_EQ(rec.action, expected) << rec.detail;
        EXPECT_TRUE(test::exists(lock_path())) << "a dry run removed the lock";
        return check.record.judgement;
    }
    void see_step(std::chrono::nanoseconds size) {
        m_options.clock.record(ClockStep{Timestamp(std::chrono::system_clock::now()), size});
    }

    TempDir m_dir;
    test::Child m_sleep = test::spawn({"sleep", "1000"});
    std::uint64_t m_start_ticks = 0;
    PassOptions m_options;
    HostFacts m_host;
    test::FakeTmuxProbe m_tmux;
};

TEST_F(MeasuredCase, ForksBelowPidMaxKeepTheLiveOwner) {
    set_forks(k_pid_max - k_reserved_pids - 1);
    const Judgement j = judge();
    EXPECT_EQ(j.verdict, Verdict::live) << j.reason;
    EXPECT_NE(j.reason.find("no PID has been handed out twice since boot (32467 forks, pid_max "
                            "32768)"),
              std::string::npos)
        << j.reason;
    see_step(60s); // a step seen as well changes nothing: the PID table settles it
    EXPECT_EQ(judge().verdict, Verdict::live);
}

TEST_F(MeasuredCase, ForksAbovePidMaxWithAStepSeenAreUnknown) {
    set_forks(k_pid_max - k_reserved_pids);
    see_step(60s);
    const Judgement j = judge();
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    EXPECT_NE(j.reason.find("the wall clock was stepped (last by +60.000s"), std::string::npos)
        << j.reason;
}

TEST_F(MeasuredCase, ForksAbovePidMaxWithNoStepKnownIsReusedAsBefore) {
    set_forks(k_pid_max + 1);
    const Judgement j = judge();
    EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
    EXPECT_NE(j.reason.find("was reused: the process started at"), std::string::npos) << j.reason;
}

TEST_F(MeasuredCase, AnUnreadablePidTableLeavesTheTimeRule) {
    // No stat file in the prepared root: nothing rules a reuse out.
    const Judgement j = judge();
    EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
}

TEST_F(MeasuredCase, TheStartTicksSeenBeforeSettleItAfterAStep) {
    set_forks(k_pid_max * 2);
    see_step(60s);
    const std::string w = worker();
    std::uint64_t known = m_start_ticks + 1;
    m_options.known_owner = [&](std::string_view asked) -> std::optional<KnownOwner> {
        EXPECT_EQ(asked, w);
        return KnownOwner{m_sleep.pid(), known};
    };
    EXPECT_EQ(judge().verdict, Verdict::unknown);
    known = m_start_ticks;
    const Judgement j = judge();
    EXPECT_EQ(j.verdict, Verdict::live) << j.reason;
    EXPECT_NE(j.reason.find("was judged this lock's owner before"), std::string::npos) << j.reason;
}

TEST_F(MeasuredCase, TheRealProcDecidesByItsOwnPidTable) {
    // This machine's /proc, as it is: live when its PID table rules a reuse out, else reused.
    SystemProcessProbe processes;
    WorkerCheck check = check_worker(worker(), m_options, processes, m_tmux, m_host);
    ASSERT_EQ(check.state, WorkerCheck::State::found) << check.error;
    const PidTableFacts table = processes.pid_table();
    const Verdict expected = pid_table_rules_out_reuse(table) ? Verdict::live : Verdict::stale;
    EXPECT_EQ(check.record.judgement.verdict, expected)
        << check.record.judgement.reason << " (forks " << table.forks_since_boot.value_or(0)
        << ", pid_max " << table.pid_max.value_or(0) << ")";
}

// The PID table is read only for a lock whose start time says "reused", and after the probe.
TEST(PidTableReads, OnlyWhenTheStartTimeSaysReused) {
    TempDir dir;
    const HostFacts host = read_host_facts();
    const Timestamp acquired = std::chrono::system_clock::now();
    test::write_file(dir.sub("root/w1/.runtime/agent.lock"),
                     test::go_lock_json(4001, format_rfc3339(acquired), "", host.hostname));
    test::write_file(dir.sub("root/w2/.runtime/agent.lock"),
                     test::go_lock_json(4002, format_rfc3339(acquired), "", host.hostname));
    test::write_file(dir.sub("root/w3/.runtime/agent.lock"),
                     test::go_lock_json(4003, format_rfc3339(acquired), "", host.hostname));
    test::FakeProcessProbe processes;
    ProcessFacts owner;
    owner.state = ProcessState::alive;
    owner.start_ticks = 1;
    owner.start_time = acquired - 1h;
    processes.facts[4001] = owner;
    owner.start_time = acquired + 60s;
    processes.facts[4002] = owner;
    owner.start_time = acquired - 2h;
    processes.facts[4003] = owner;
    processes.table.forks_since_boot = 10;
    processes.table.pid_max = k_pid_max;
    processes.table.boot_time = acquired - 24h;
    test::FakeTmuxProbe tmux;
    PassOptions options;
    options.roots = {dir.sub("root")};
    options.dry_run = true;
    PassReport report = run_pass(options, processes, tmux, host);
    ASSERT_EQ(report.locks.size(), 3u);
    for (const auto& rec : report.locks) {
        EXPECT_EQ(rec.judgement.verdict, Verdict::live) << rec.judgement.reason;
    }
    // One read for the boot time, once per pass however many Go locks need it, and one for w2,
    // whose owner's start time says reused: none for w1 and w3.
    EXPECT_EQ(processes.table_reads, 2);
}

} // namespace
} // namespace agentlock
