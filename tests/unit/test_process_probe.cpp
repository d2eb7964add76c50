// The process probe against the real system: real children (live, reaped, zombie, renamed),
// a real EPERM from an unprivileged child, and fake proc roots for reused PIDs and unreadable
// /proc. EPERM from kill(pid, 0) means alive, a zombie means its owner is gone, and a PID whose
// process started after the lock was taken belongs to someone else.

#include <agentlock/process_probe.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::TempDir;

std::string slurp(const std::string& path) {
    return test::read_proc_file(path).value_or("");
}

// A /proc/<pid>/stat line with the given comm, state and start ticks (field 22).
std::string stat_line(long long pid, const std::string& comm, char state,
                      const std::string& start_ticks) {
    // Fields 4..21: ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
    // stime cutime cstime priority nice num_threads itrealvalue.
    return std::to_string(pid) + " (" + comm + ") " + state +
           " 1 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 " + start_ticks +
           " 12345678 200 18446744073709551615 1 1 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
}

// A child whose comm is `name` (set with prctl), sleeping until killed.
Child spawn_renamed(const std::string& name) {
    pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        if (::prctl(PR_SET_NAME, name.c_str(), 0, 0, 0) != 0) {
            ::_exit(1);
        }
        while (true) {
            ::pause();
        }
    }
    Child child(pid);
    const std::string comm_path = "/proc/" + std::to_string(pid) + "/comm";
    if (!test::wait_until([&] { return slurp(comm_path) == name + "\n"; })) {
        throw std::runtime_error("child never took the name " + name);
    }
    return child;
}

std::chrono::nanoseconds abs_diff(Timestamp a, Timestamp b) {
    return a > b ? a - b : b - a;
}

// What a probe run in an unprivileged child reported, passed back through a pipe.
struct ChildReport {
    bool dropped = false; // privileges were dropped to nobody
    int kill_errno = 0;   // errno of kill(target, 0) inside the child
    ProcessFacts facts;
};

// Forks, drops to uid/gid 65534 (nobody), then probes `pid` with `probe`.
ChildReport probe_as_nobody(SystemProcessProbe& probe, pid_t pid) {
    test::AsUserResult r = test::run_as_nobody([&probe, pid] {
        int kill_errno = ::kill(pid, 0) == 0 ? 0 : errno;
        ProcessFacts f = probe.probe(pid);
        return "dropped\n" + std::to_string(kill_errno) + "\n" +
               std::to_string(static_cast<int>(f.state)) + "\n" +
               (f.start_ticks ? std::to_string(*f.start_ticks) : "-") + "\n" + f.detail;
    });
    const std::string text = r.dropped ? r.output : "nodrop\n" + r.output;
    ChildReport report;
    std::istringstream in(text);
    std::string word;
    std::getline(in, word);
    if (word != "dropped") {
        std::getline(in, report.facts.detail);
        return report;
    }
    report.dropped = true;
    std::getline(in, word);
    report.kill_errno = std::stoi(word);
    std::getline(in, word);
    report.facts.state = static_cast<ProcessState>(std::stoi(word));
    std::getline(in, word);
    if (word != "-") {
        report.facts.start_ticks = std::stoull(word);
    }
    std::getline(in, report.facts.detail, '\0');
    return report;
}

// --- the real /proc -------------------------------------------------------------------------

TEST(ProcessProbe, OwnProcessIsAliveWithItsStartTicks) {
    SystemProcessProbe probe;
    ProcessFacts f = probe.probe(::getpid());
    EXPECT_EQ(f.state, ProcessState::alive);
    ASSERT_TRUE(f.start_ticks.has_value()) << f.detail;
    ASSERT_TRUE(own_start_ticks().has_value());
    EXPECT_EQ(*f.start_ticks, *own_start_ticks());
    ASSERT_TRUE(f.start_time.has_value());
    EXPECT_LE(*f.start_time, std::chrono::system_clock::now());
}

TEST(ProcessProbe, LiveChildIsAliveAndStartedJustNow) {
    auto before = std::chrono::system_clock::now();
    Child child = test::spawn_sleeper();
    SystemProcessProbe probe;
    ProcessFacts f = probe.probe(child.pid());
    auto after = std::chrono::system_clock::now();

    EXPECT_EQ(f.state, ProcessState::alive);
    ASSERT_TRUE(f.start_ticks.has_value()) << f.detail;
    ASSERT_TRUE(f.start_time.has_value());
    // Ticks are 10 ms and the boot time is computed, so allow a little slack either side.
    EXPECT_GE(*f.start_time, before - 2s);
    EXPECT_LE(*f.start_time, after + 2s);
    EXPECT_GE(*f.start_ticks, *own_start_ticks());
}

TEST(ProcessProbe, ReapedChildIsDead) {
    pid_t pid = test::dead_pid();
    SystemProcessProbe probe;
    ProcessFacts f = probe.probe(pid);
    EXPECT_EQ(f.state, ProcessState::dead) << f.detail;
    EXPECT_FALSE(f.start_ticks.has_value());
}

TEST(ProcessProbe, KilledChildIsDeadOnceReaped) {
    Child child = test::spawn_sleeper();
    pid_t pid = child.pid();
    SystemProcessProbe probe;
    ASSERT_EQ(probe.probe(pid).state, ProcessState::alive);
    child.kill_and_reap();
    EXPECT_EQ(probe.probe(pid).state, ProcessState::dead);
}

// A zombie's owner is gone, even though kill(pid, 0) succeeds.
TEST(ProcessProbe, ZombieIsReportedAsZombie) {
    Child zombie = test::spawn_zombie();
    ASSERT_EQ(::kill(zombie.pid(), 0), 0) << "kill(0) succeeds on a zombie";
    SystemProcessProbe probe;
    ProcessFacts f = probe.probe(zombie.pid());
    EXPECT_EQ(f.state, ProcessState::zombie) << f.detail;
}

TEST(ProcessProbe, NonPositivePidsAreDead) {
    SystemProcessProbe probe;
    // kill(0, 0) and kill(-1, 0) would succeed: they address groups, not a process.
    for (std::int64_t pid : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{-12345}}) {
        ProcessFacts f = probe.probe(pid);
        EXPECT_EQ(f.state, ProcessState::dead) << "pid " << pid;
        EXPECT_FALSE(f.start_ticks.has_value());
    }
}

TEST(ProcessProbe, PidBeyondPidTIsDeadNotTruncated) {
    SystemProcessProbe probe;
    // 2^32 + own pid would alias our own PID if truncated to 32 bits.
    std::int64_t pid = (std::int64_t{1} << 32) + ::getpid();
    EXPECT_EQ(probe.probe(pid).state, ProcessState::dead);
}

// A comm with ')' and spaces, arranged so that cutting at the FIRST ')' reads state 'Z'.
TEST(ProcessProbe, CommandNameWithParenthesesAndSpaces) {
    const std::string name = "a) Z 1 (c)";
    Child child = spawn_renamed(name);
    std::string text = slurp("/proc/" + std::to_string(child.pid()) + "/stat");
    ASSERT_NE(text.find("(" + name + ")"), std::string::npos) << text;

    std::optional<StatFields> fields = parse_proc_stat(text);
    ASSERT_TRUE(fields.has_value()) << text;
    EXPECT_EQ(fields->state, 'S');
    EXPECT_GE(fields->start_ticks, *own_start_ticks());

    SystemProcessProbe probe;
    ProcessFacts f = probe.probe(child.pid());
    EXPECT_EQ(f.state, ProcessState::alive);
    ASSERT_TRUE(f.start_ticks.has_value()) << f.detail;
    EXPECT_EQ(*f.start_ticks, fields->start_ticks);
}

// EPERM means the process exists and belongs to someone else: alive.
TEST(ProcessProbe, EpermFromAnotherUsersProcessMeansAlive) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to fork a child that drops to uid 65534 and then gets EPERM "
                        "from kill(pid, 0) on a root-owned process";
    }
    Child sleeper = test::spawn_sleeper(); // root-owned
    SystemProcessProbe probe;
    ChildReport r = probe_as_nobody(probe, sleeper.pid());
    if (!r.dropped) {
        GTEST_SKIP() << "could not drop privileges to uid 65534: " << r.facts.detail;
    }
    ASSERT_EQ(r.kill_errno, EPERM)
        << "the set-up must produce EPERM: " << std::strerror(r.kill_errno);
    EXPECT_EQ(r.facts.state, ProcessState::alive) << r.facts.detail;
    // /proc/<pid>/stat is world-readable, so the start time is still known.
    ASSERT_TRUE(r.facts.start_ticks.has_value()) << r.facts.detail;
    EXPECT_EQ(*r.facts.start_ticks, *probe.probe(sleeper.pid()).start_ticks);
}

// The same as an unprivileged user whose /proc/<pid>/stat is unreadable: alive, start unknown.
TEST(ProcessProbe, EpermWithUnreadableStatIsAliveWithoutStartFacts) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to fork a child that drops to uid 65534";
    }
    Child sleeper = test::spawn_sleeper();
    TempDir proc;
    const std::string dir = proc.sub(std::to_string(sleeper.pid()));
    test::write_file(dir + "/stat", stat_line(sleeper.pid(), "sleep", 'S', "100"));
    ASSERT_EQ(::chmod((dir + "/stat").c_str(), 0000), 0);
    ASSERT_EQ(::chmod(proc.path().c_str(), 0755), 0);
    SystemProcessProbe probe(proc.path());
    ChildReport r = probe_as_nobody(probe, sleeper.pid());
    if (!r.dropped) {
        GTEST_SKIP() << "could not drop privileges to uid 65534: " << r.facts.detail;
    }
    ASSERT_EQ(r.kill_errno, EPERM);
    EXPECT_EQ(r.facts.state, ProcessState::alive) << r.facts.detail;
    EXPECT_FALSE(r.facts.start_ticks.has_value());
    EXPECT_NE(r.facts.detail.find("Permission denied"), std::string::npos) << r.facts.detail;
}

// --- fake proc roots ------------------------------------------------------------------------

class FakeProcTest : public ::testing::Test {
protected:
    void write_stat(pid_t pid, const std::string& content) {
        test::write_file(m_proc.sub(std::to_string(pid) + "/stat"), content);
    }
    TempDir m_proc;
    Child m_child = test::spawn_sleeper();
};

// A PID now held by a process that started long after the lock was taken (reused). The probe
// reports that process's start time (from the stat file), which the judge compares.
TEST_F(FakeProcTest, ReusedPidReportsTheNewProcessStartTime) {
    const std::uint64_t later = *own_start_ticks() + 360'000; // one hour after we started
    write_stat(m_child.pid(), stat_line(m_child.pid(), "sleep", 'S', std::to_string(later)));
    SystemProcessProbe probe(m_proc.path());
    ProcessFacts f = probe.probe(m_child.pid());
    EXPECT_EQ(f.state, ProcessState::alive);
    ASSERT_TRUE(f.start_ticks.has_value()) << f.detail;
    EXPECT_EQ(*f.start_ticks, later);
    ASSERT_TRUE(f.start_time.has_value());
    EXPECT_LT(abs_diff(*f.start_time, ticks_to_wall_time(later)), std::chrono::milliseconds(100));
    // A lock acquired now predates this "owner" by far more than any margin.
    EXPECT_GT(*f.start_time, std::chrono::system_clock::now() + 30min);
}

TEST_F(FakeProcTest, ZombieStateFromStatFile) {
    write_stat(m_child.pid(), stat_line(m_child.pid(), "sleep", 'Z', "100"));
    SystemProcessProbe probe(m_proc.path());
    EXPECT_EQ(probe.probe(m_child.pid()).state, ProcessState::zombie);
    write_stat(m_child.pid(), stat_line(m_child.pid(), "sleep", 'X', "100"));
    EXPECT_EQ(probe.probe(m_child.pid()).state, ProcessState::zombie);
}

// "/proc unreadable means unknown, not dead": the start facts are missing, never the process.
TEST_F(FakeProcTest, StatThatIsADirectoryGivesAliveWithoutStartFacts) {
    test::make_dirs(m_proc.sub(std::to_string(m_child.pid()) + "/stat"));
    SystemProcessProbe probe(m_proc.path());
    ProcessFacts f = probe.probe(m_child.pid());
    EXPECT_EQ(f.state, ProcessState::alive);
    EXPECT_FALSE(f.start_ticks.has_value());
    EXPECT_FALSE(f.start_time.has_value());
    EXPECT_NE(f.detail.find("read " + m_proc.path()), std::string::npos) << f.detail;
    EXPECT_NE(f.detail.find("Is a directory"), std::string::npos) << f.detail;
}

TEST_F(FakeProcTest, MissingStatForALivePidGivesAliveWithoutStartFacts) {
    test::make_dirs(m_proc.sub(std::to_string(m_child.pid())));
    SystemProcessProbe probe(m_proc.path());
    ProcessFacts f = probe.probe(m_child.pid());
    EXPECT_EQ(f.state, ProcessState::alive);
    EXPECT_FALSE(f.start_ticks.has_value());
    EXPECT_NE(f.detail.find("No such file or directory"), std::string::npos) << f.detail;
}

TEST_F(FakeProcTest, MissingProcRootGivesAliveWithoutStartFacts) {
    SystemProcessProbe probe(m_proc.sub("does-not-exist"));
    ProcessFacts f = probe.probe(m_child.pid());
    EXPECT_EQ(f.state, ProcessState::alive);
    EXPECT_FALSE(f.start_ticks.has_value());
    EXPECT_FALSE(f.detail.empty());
}

TEST_F(FakeProcTest, MalformedStatGivesAliveWithoutStartFacts) {
    write_stat(m_child.pid(), std::to_string(m_child.pid()) + " (sleep) S 1 2 3\n");
    SystemProcessProbe probe(m_proc.path());
    ProcessFacts f = probe.probe(m_child.pid());
    EXPECT_EQ(f.state, ProcessState::alive);
    EXPECT_FALSE(f.start_ticks.has_value());
    EXPECT_NE(f.detail.find("parse"), std::string::npos) << f.detail;
}

// kill(pid, 0) decides death; a fake /proc cannot resurrect a dead PID.
TEST_F(FakeProcTest, DeadPidIsDeadWhateverTheStatFileSays) {
    pid_t pid = test::dead_pid();
    write_stat(pid, stat_line(pid, "sleep", 'S', "100"));
    SystemProcessProbe probe(m_proc.path());
    EXPECT_EQ(probe.probe(pid).state, ProcessState::dead);
}

// --- parse_proc_stat --------------------------------------------------------------------------

struct StatCase {
    const char* name;
    std::string text;
    std::optional<char> state; // nullopt: must not parse
    std::uint64_t start_ticks = 0;
};

class ParseProcStat : public ::testing::TestWithParam<StatCase> {};

TEST_P(ParseProcStat, Table) {
    const StatCase& c = GetParam();
    std::optional<StatFields> f = parse_proc_stat(c.text);
    if (!c.state) {
        EXPECT_FALSE(f.has_value()) << "parsed: " << c.text;
        return;
    }
    ASSERT_TRUE(f.has_value()) << c.text;
    EXPECT_EQ(f->state, *c.state);
    EXPECT_EQ(f->start_ticks, c.start_ticks);
}

const std::string k_real_line =
    "4242 (bash) S 4241 4242 4242 34816 4300 4194304 2841 14561 0 3 5 2 29 11 20 0 1 0 "
    "123456 9216000 1210 18446744073709551615 94 95 96 0 0 0 65536 3670020 1266777851 0 0 0 "
    "17 1 0 0 0 0 0 97 98 99 100 101 102 103 0\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseProcStat,
    ::testing::Values(
        StatCase{"real_line", k_real_line, 'S', 123456},
        StatCase{"no_newline", stat_line(7, "x", 'R', "99").substr(0, 200), 'R', 99},
        StatCase{"field_22_is_last", "7 (x) S 1 1 1 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 555", 'S', 555},
        StatCase{"spaces_in_comm", stat_line(7, "a b c", 'S', "77"), 'S', 77},
        StatCase{"parens_in_comm", stat_line(7, "a) b (c", 'D', "78"), 'D', 78},
        StatCase{"fake_state_in_comm", stat_line(7, "x) Z 1 2 (", 'S', "79"), 'S', 79},
        StatCase{"only_paren_comm", stat_line(7, ")", 'T', "80"), 'T', 80},
        StatCase{"newline_in_comm", stat_line(7, "a\nb)", 'I', "81"), 'I', 81},
        StatCase{"empty_comm", stat_line(7, "", 'S', "82"), 'S', 82},
        StatCase{"max_u64", stat_line(7, "x", 'S', "18446744073709551615"), 'S',
                 18446744073709551615ULL},
        StatCase{"zombie", stat_line(7, "x", 'Z', "83"), 'Z', 83},
        StatCase{"empty", "", std::nullopt},
        StatCase{"no_close_paren", "7 (x S 1 1 1 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 555\n",
                 std::nullopt},
        StatCase{"no_open_paren", "7 x) S 1 1 1 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 555\n",
                 std::nullopt},
        StatCase{"truncated_after_comm", "7 (x)", std::nullopt},
        StatCase{"truncated_after_state", "7 (x) S", std::nullopt},
        StatCase{"truncated_before_22", "7 (x) S 1 1 1 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0\n",
                 std::nullopt},
        StatCase{"truncated_mid_line", k_real_line.substr(0, 40), std::nullopt},
        StatCase{"non_numeric_22", stat_line(7, "x", 'S', "12ab"), std::nullopt},
        StatCase{"negative_22", stat_line(7, "x", 'S', "-5"), std::nullopt},
        StatCase{"overflow_22", stat_line(7, "x", 'S', "18446744073709551616"), std::nullopt},
        StatCase{"empty_22", stat_line(7, "x", 'S', ""), std::nullopt},
        StatCase{"two_letter_state", stat_line(7, "x", 'S', "5").replace(6, 1, "SS"), std::nullopt},
        StatCase{"no_space_after_paren", "7 (x)S 1 1 1 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 5 6\n",
                 std::nullopt}),
    [](const ::testing::TestParamInfo<StatCase>& p) { return std::string(p.param.name); });

// --- clocks and host facts ----------------------------------------------------------------------

// Boot time from the clocks agrees with /proc/stat's whole-second btime.
TEST(TicksToWallTime, ZeroTicksIsBootTime) {
    std::istringstream in(slurp("/proc/stat"));
    std::string line;
    long long btime = -1;
    while (std::getline(in, line)) {
        if (line.rfind("btime ", 0) == 0) {
            btime = std::stoll(line.substr(6));
        }
    }
    ASSERT_GT(btime, 0);
    Timestamp boot = ticks_to_wall_time(0);
    Timestamp btime_ts{std::chrono::seconds(btime)};
    EXPECT_LT(abs_diff(boot, btime_ts), std::chrono::seconds(2));
}

TEST(TicksToWallTime, TicksAreClockTicks) {
    const long hz = ::sysconf(_SC_CLK_TCK);
    ASSERT_GT(hz, 0);
    auto step = ticks_to_wall_time(static_cast<std::uint64_t>(hz) * 10) - ticks_to_wall_time(0);
    EXPECT_LT(abs_diff(Timestamp(step), Timestamp(std::chrono::seconds(10))),
              std::chrono::milliseconds(100));
}

TEST(TicksToWallTime, HugeTicksDoNotOverflowIntoThePast) {
    Timestamp t = ticks_to_wall_time(std::numeric_limits<std::uint64_t>::max());
    EXPECT_GT(t, std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 50));
}

TEST(HostFacts, HostnameAndBootId) {
    HostFacts h = read_host_facts();
    EXPECT_EQ(h.hostname, test::local_hostname());
    EXPECT_FALSE(h.hostname.empty());
    std::string boot_id = slurp("/proc/sys/kernel/random/boot_id");
    while (!boot_id.empty() && boot_id.back() == '\n') {
        boot_id.pop_back();
    }
    ASSERT_EQ(boot_id.size(), 36u);
    EXPECT_EQ(h.boot_id, boot_id);
}

// --- the PID table (issue 14) -------------------------------------------------------------------

struct TotalsCase {
    const char* name;
    std::string text;
    std::optional<std::uint64_t> processes;
    std::optional<std::int64_t> btime;
};

class ParseProcStatTotals : public ::testing::TestWithParam<TotalsCase> {};

TEST_P(ParseProcStatTotals, Table) {
    const TotalsCase& c = GetParam();
    const ProcStatTotals t = parse_proc_stat_totals(c.text);
    EXPECT_EQ(t.processes, c.processes);
    EXPECT_EQ(t.btime, c.btime);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseProcStatTotals,
    ::testing::Values(
        TotalsCase{"real_shape",
                   "cpu  1 2 3\ncpu0 1 2 3\nintr 5 0 0\nctxt 9\nbtime 1796609622\n"
                   "processes 8527\nprocs_running 4\nprocs_blocked 0\nsoftirq 1 2\n",
                   8527, 1796609622},
        TotalsCase{"last_line_without_newline", "btime 7\nprocesses 12", 12, 7},
        TotalsCase{"absent", "cpu 1 2 3\nctxt 9\n", std::nullopt, std::nullopt},
        TotalsCase{"not_at_line_start", "xprocesses 5\n btime 6\n", std::nullopt, std::nullopt},
        TotalsCase{"prefix_of_another_key", "processes_x 5\nbtimes 6\n", std::nullopt,
                   std::nullopt},
        TotalsCase{"trailing_garbage", "processes 5x\nbtime 6 7\n", std::nullopt, std::nullopt},
        TotalsCase{"negative_or_empty", "processes -5\nbtime \n", std::nullopt, std::nullopt},
        TotalsCase{"overflow", "processes 99999999999999999999999\n", std::nullopt, std::nullopt}),
    [](const ::testing::TestParamInfo<TotalsCase>& p) { return std::string(p.param.name); });

TEST(PidTable, RealProcAgreesWithItself) {
    SystemProcessProbe probe;
    const PidTableFacts t = probe.pid_table();
    ASSERT_TRUE(t.forks_since_boot.has_value()) << t.detail;
    ASSERT_TRUE(t.pid_max.has_value()) << t.detail;
    ASSERT_TRUE(t.boot_time.has_value()) << t.detail;
    EXPECT_TRUE(t.detail.empty()) << t.detail;
    EXPECT_EQ(*t.pid_max, std::stoull(slurp("/proc/sys/kernel/pid_max")));
    // This process and its parents were forked since boot.
    EXPECT_GE(*t.forks_since_boot, static_cast<std::uint64_t>(1));
    const std::uint64_t before = *t.forks_since_boot;
    test::spawn_sleeper().kill_and_reap();
    EXPECT_GT(*probe.pid_table().forks_since_boot, before);
    EXPECT_LT(abs_diff(*t.boot_time, ticks_to_wall_time(0)), std::chrono::seconds(2));
}

TEST_F(FakeProcTest, PidTableFromAPreparedRoot) {
    test::write_file(m_proc.sub("stat"), "cpu 1 2\nbtime 1000\nprocesses 4242\n");
    test::write_file(m_proc.sub("sys/kernel/pid_max"), "32768\n");
    const PidTableFacts t = SystemProcessProbe(m_proc.path()).pid_table();
    EXPECT_EQ(t.forks_since_boot, std::optional<std::uint64_t>(4242));
    EXPECT_EQ(t.pid_max, std::optional<std::uint64_t>(32768));
    EXPECT_EQ(t.boot_time, std::optional<Timestamp>(Timestamp(std::chrono::seconds(1000))));
    EXPECT_TRUE(t.detail.empty()) << t.detail;
}

TEST_F(FakeProcTest, UnreadablePidTableFactsAreUnsetWithTheReason) {
    PidTableFacts t = SystemProcessProbe(m_proc.path()).pid_table();
    EXPECT_FALSE(t.forks_since_boot.has_value());
    EXPECT_FALSE(t.pid_max.has_value());
    EXPECT_FALSE(t.boot_time.has_value());
    EXPECT_NE(t.detail.find("read " + m_proc.sub("stat") + ": No such file"), std::string::npos)
        << t.detail;
    EXPECT_NE(t.detail.find("read " + m_proc.sub("sys/kernel/pid_max")), std::string::npos)
        << t.detail;

    test::write_file(m_proc.sub("stat"), "cpu 1 2\n");
    test::write_file(m_proc.sub("sys/kernel/pid_max"), "lots\n");
    t = SystemProcessProbe(m_proc.path()).pid_table();
    EXPECT_FALSE(t.forks_since_boot.has_value());
    EXPECT_FALSE(t.pid_max.has_value());
    EXPECT_NE(t.detail.find("no processes or btime line"), std::string::npos) << t.detail;
    EXPECT_NE(t.detail.find("not a number"), std::string::npos) << t.detail;
}

} // namespace
} // namespace agentlock
