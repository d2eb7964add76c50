// Go interop, so that Go and C++ agents share one lock format: a small Go program
// (tests/interop/go) writes locks exactly as the seed does (encoding/json, time.Now() in the local
// zone) and reads ours back into the seed's LockInfo. Skipped, loudly, only when no Go toolchain is
// installed.
#include "test_support.hpp"

#include <agentlock/fd.hpp>
#include <agentlock/lock_file.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace agentlock {
namespace {

using test::TempDir;

struct ProgramRun {
    int status = -1; ///< exit status, or 128 + signal
    std::string out;
    std::string err;
};

// Runs `argv` (argv[0] an absolute path) in `cwd` with this process's environment plus `env`.
ProgramRun run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               const std::string& cwd = "") {
    std::map<std::string, std::string> merged;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string kv = *e;
        const auto eq = kv.find('=');
        if (eq != std::string::npos) {
            merged[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
    }
    for (const auto& [k, v] : env) {
        merged[k] = v;
    }
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : merged) {
        env_strings.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& s : env_strings) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> argp;
    for (auto& s : args) {
        argp.push_back(s.data());
    }
    argp.push_back(nullptr);

    int out_pipe[2];
    int err_pipe[2];
    ProgramRun result;
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
        result.err = std::string("pipe: ") + std::strerror(errno);
        return result;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
            ::_exit(126);
        }
        ::execve(argp[0], argp.data(), envp.data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    Fd out_fd(out_pipe[0]);
    Fd err_fd(err_pipe[0]);
    if (pid < 0) {
        result.err = std::string("fork: ") + std::strerror(errno);
        return result;
    }
    pollfd fds[2] = {{out_fd.get(), POLLIN, 0}, {err_fd.get(), POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    while (open_fds > 0) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                char buf[4096];
                const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
                if (n > 0) {
                    sinks[i]->append(buf, static_cast<std::size_t>(n));
                } else if (n == 0 || errno != EINTR) {
                    fds[i].fd = -1;
                    --open_fds;
                }
            }
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

bool executable(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

std::string find_go() {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        if (!dir.empty() && executable(dir + "/go")) {
            return dir + "/go";
        }
    }
    for (const char* candidate : {"/usr/lib/go/bin/go", "/usr/local/go/bin/go"}) {
        if (executable(candidate)) {
            return candidate;
        }
    }
    return "";
}

// The test binary's directory: the Go program and its caches live in the build tree.
std::string build_tree_dir() {
    char buf[PATH_MAX] = {};
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        return "/tmp";
    }
    std::string exe(buf, static_cast<std::size_t>(n));
    return exe.substr(0, exe.find_last_of('/'));
}

// The Go program, built once per test process. ctest runs tests as separate processes, possibly
// in parallel: they serialise on a flock and each build replaces the binary atomically.
struct GoProgram {
    std::string go;     ///< empty: no toolchain
    std::string binary; ///< empty: the build failed, see `error`
    std::string error;
};

const GoProgram& go_program() {
    static const GoProgram program = [] {
        GoProgram p;
        p.go = find_go();
        if (p.go.empty()) {
            return p;
        }
        const std::string dir = build_tree_dir() + "/go-interop";
        test::make_dirs(dir + "/cache");
        test::make_dirs(dir + "/gopath");
        Fd lock(::open((dir + "/build.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
        if (!lock || ::flock(lock.get(), LOCK_EX) != 0) {
            p.error = "lock " + dir + "/build.lock: " + std::strerror(errno);
            return p;
        }
        const std::string binary = dir + "/agentlock-interop";
        const std::string tmp = binary + ".tmp." + std::to_string(::getpid());
        // A minimal CI environment may lack HOME: give Go every directory it would derive from
        // it, and forbid any network fetch.
        const ProgramRun build = run({p.go, "build", "-trimpath", "-o", tmp, "."},
                                     {{"GOCACHE", dir + "/cache"},
                                      {"GOPATH", dir + "/gopath"},
                                      {"GOENV", "off"},
                                      {"GOFLAGS", "-mod=mod"},
                                      {"GOPROXY", "off"},
                                      {"GOTOOLCHAIN", "local"},
                                      {"GO111MODULE", "on"},
                                      {"CGO_ENABLED", "0"}},
                                     AGENTLOCK_GO_SOURCE_DIR);
        if (build.status != 0) {
            p.error = p.go + " build in " AGENTLOCK_GO_SOURCE_DIR " failed (status " +
                      std::to_string(build.status) + "):\n" + build.out + build.err;
            ::unlink(tmp.c_str());
            return p;
        }
        if (::rename(tmp.c_str(), binary.c_str()) != 0) {
            p.error = "rename " + tmp + ": " + std::strerror(errno);
            return p;
        }
        p.binary = binary;
        return p;
    }();
    return program;
}

class GoInterop : public ::testing::Test {
protected:
    void SetUp() override {
        const GoProgram& p = go_program();
        if (p.go.empty()) {
            GTEST_SKIP() << "Go toolchain not found: install golang-go";
        }
        ASSERT_FALSE(p.binary.empty()) << p.error;
        test::make_dirs(runtime());
        m_fd = Fd(::open(runtime().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(m_fd.valid());
    }
    std::string runtime() const { return m_dir.sub("worker/.runtime"); }
    std::string lock() const { return runtime() + "/agent.lock"; }

    ProgramRun go(const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env = {}) {
        std::vector<std::string> argv = {go_program().binary};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, env);
    }

    // The Go seed's Read(): pid, acquired_at (UTC, RFC3339Nano), session, hostname.
    struct GoRead {
        bool ok = false;
        std::string error;
        std::int64_t pid = 0;
        std::string acquired_at;
        std::string session_id;
        std::string hostname;
    };
    GoRead go_read(const std::string& path) {
        const ProgramRun r = go({"read", path});
        GoRead g;
        if (r.status != 0) {
            g.error = r.err;
            return g;
        }
        auto l = lines(r.out);
        l.resize(4);
        g.ok = true;
        g.pid = std::stoll(l[0]);
        g.acquired_at = l[1];
        g.session_id = l[2];
        g.hostname = l[3];
        return g;
    }

    // Has Go write a lock (as the seed's write()) under the time zone `tz`; checks that C++ reads
    // exactly what Go meant, and returns the raw acquired_at text Go wrote.
    std::string go_writes_cpp_reads(const std::string& tz) {
        const ProgramRun w = go({"write", lock(), "gt-crew-" + tz, "host-" + tz}, {{"TZ", tz}});
        EXPECT_EQ(w.status, 0) << w.err;
        const auto out = lines(w.out);
        if (out.size() != 2) {
            ADD_FAILURE() << "unexpected output from Go: " << w.out;
            return "";
        }
        const LockRead r = read_lock_at(m_fd.get(), lock());
        EXPECT_EQ(r.state, LockRead::State::ok) << r.message << "\n" << r.bytes;
        if (!r.info) {
            return "";
        }
        EXPECT_EQ(r.info->pid, std::stoll(out[0]));
        const auto utc = parse_rfc3339(out[1]);
        EXPECT_TRUE(utc.has_value()) << out[1];
        EXPECT_EQ(r.info->acquired_at, utc) << r.bytes;
        EXPECT_EQ(r.info->session_id, "gt-crew-" + tz);
        EXPECT_EQ(r.info->hostname, "host-" + tz);
        EXPECT_FALSE(r.info->pid_start_ticks.has_value());
        EXPECT_FALSE(r.info->boot_id.has_value());
        const auto again = parse_lock(r.bytes);
        EXPECT_TRUE(again && *again == *r.info);
        const auto key = r.bytes.find("\"acquired_at\": \"");
        const auto end = r.bytes.find('"', key + 16);
        return key == std::string::npos ? "" : r.bytes.substr(key + 16, end - key - 16);
    }

    TempDir m_dir;
    Fd m_fd;
};

TEST_F(GoInterop, GoWritesCppReads) {
    const std::string at = go_writes_cpp_reads("UTC");
    EXPECT_EQ(at.back(), 'Z') << at;
}

TEST_F(GoInterop, GoWritesInLocalTimeZonesCppReadsTheSameInstant) {
    // time.Now() marshals with the local offset; TZ makes the Go writer use these zones.
    const std::vector<std::pair<std::string, std::vector<std::string>>> zones = {
        {"Asia/Kolkata", {"+05:30"}},
        {"America/Los_Angeles", {"-08:00", "-07:00"}},
        {"Asia/Kathmandu", {"+05:45"}},
        {"America/St_Johns", {"-03:30", "-02:30"}},
        {"Pacific/Chatham", {"+12:45", "+13:45"}},
    };
    for (const auto& [tz, offsets] : zones) {
        SCOPED_TRACE(tz);
        const std::string at = go_writes_cpp_reads(tz);
        ASSERT_GE(at.size(), 6U);
        const std::string suffix = at.substr(at.size() - 6);
        EXPECT_NE(std::find(offsets.begin(), offsets.end(), suffix), offsets.end())
            << "Go wrote " << at << "; the zone was not applied, so the offset path is untested";
    }
}

TEST_F(GoInterop, CppWritesGoReadsWithNanosecondPrecision) {
    const std::vector<std::string> times = {
        "2026-11-27T05:15:43.123456789Z", "2026-11-27T05:15:43.000000001Z",
        "2026-11-27T05:15:43Z",           "2026-11-27T05:15:43.5Z",
        "1969-12-31T23:59:59.999999999Z", "2262-04-11T23:47:16.854775807Z",
        "1677-09-21T00:12:43.145224192Z",
    };
    const std::vector<std::pair<std::string, std::string>> names = {
        {"gt-beads-crew-dave", "build-host.example.org"},
        {"$12", ""},
        {"%7", "h"},
        {"", ""},
        {"quote\" back\\slash <html> & tab\t \xC3\xA9 \xF0\x9F\x98\x80 \xE2\x80\xA8 \x01", "h\x7f"},
    };
    std::int64_t pid = 1;
    for (const auto& time : times) {
        for (const auto& [session, host] : names) {
            SCOPED_TRACE(time + " " + session);
            LockInfo info;
            info.pid = pid++ * 7919;
            info.acquired_at = *parse_rfc3339(time);
            info.session_id = session;
            info.hostname = host;
            info.pid_start_ticks = 123456789012ULL;
            info.boot_id = "0b6a3d4e-6f5f-4e0e-9c2b-1f0e8d7c6b5a";
            const Status s = write_lock_at(m_fd.get(), lock(), info);
            ASSERT_TRUE(s) << s.error().message;
            const GoRead g = go_read(lock());
            ASSERT_TRUE(g.ok) << g.error << "\n" << test::read_file(lock());
            EXPECT_EQ(g.pid, info.pid);
            EXPECT_EQ(parse_rfc3339(g.acquired_at), info.acquired_at) << g.acquired_at;
            EXPECT_EQ(g.session_id, session);
            EXPECT_EQ(g.hostname, host);
        }
    }
}

TEST_F(GoInterop, SerializeLockIsByteIdenticalToGoMarshalIndent) {
    struct Case {
        std::int64_t pid;
        std::string time;
        std::string session;
        std::string host;
    };
    const std::vector<Case> cases = {
        {4242, "2026-11-27T05:15:43.123456789Z", "sess-1", "host-a"},
        {1, "2026-11-27T10:45:43.5+05:30", "", ""},
        {-7, "2026-11-27T05:15:43Z", "$3", ""},
        {0, "1969-12-31T23:59:59.000000001Z", "", "h"},
        {9223372036854775807, "2262-04-11T23:47:16.8547758Z", "%12", "x"},
        {5, "2026-01-02T03:04:05.06Z",
         "a<b>&\"\\\n\r\t\x01\x1f\x7f \xC3\xA9 \xE2\x80\xA8\xE2\x80\xA9 \xFF \xED\xA0\x80 "
         "\xE0\x80\x80 \xF4\x90\x80\x80 \xC0\xAF \xE2\x82 x",
         "h\xE2\x84\xAA\xC5\xBF\x08\x0c/"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.time + " " + c.session);
        const ProgramRun m = go({"marshal", std::to_string(c.pid), c.time, c.session, c.host});
        ASSERT_EQ(m.status, 0) << m.err;
        const auto t = parse_rfc3339(c.time);
        ASSERT_TRUE(t.has_value());
        EXPECT_EQ(serialize_lock(LockInfo{c.pid, *t, c.session, c.host, std::nullopt, std::nullopt,
                                          std::nullopt, std::nullopt}),
                  m.out);
    }
}

TEST_F(GoInterop, ParseLockReadsWhatGoReadsAndRejectsWhatGoRejects) {
    const std::vector<std::string> agree = {
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z"})",
        R"({"pid":-5,"acquired_at":"2026-11-27T05:15:43.1+05:30","session_id":"s","hostname":"h"})",
        R"({"pid": 0, "acquired_at": "2026-11-27T05:15:43.000000001-07:00"})",
        R"({"PID": 12, "Acquired_At": "2026-11-27T05:15:43Z", "SESSION_ID": "S", "HostName": "H"})",
        "{\"pid\": 1, \"acquired_at\": \"2026-11-27T05:15:43Z\", \"\xC5\xBF"
        "ession_id\": \"long s\"}",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z", "pid": 2})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z", "extra": {"a": [1, 2, {"b": null}]}})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z", "session_id": null, "hostname": null})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43.1234567891234Z"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43,5Z"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T5:15:43Z"})",
        R"({"pid": 1, "acquired_at": "2024-02-29T23:59:59.999999999-00:00"})",
        R"({"pid": 1, "acquired_at": "1969-07-20T20:17:40Z"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z", "session_id": "\u00e9\ud83d\ude00\/"})",
        "{\"pid\": 1, \"acquired_at\": \"2026-11-27T05:15:43Z\", \"session_id\": \"\xff\xfe\"}",
        "\xEF\xBB\xBF{}", // a BOM: both reject
        "",
        "{",
        "null trailing",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z"} {})",
        R"({"pid": "1", "acquired_at": "2026-11-27T05:15:43Z"})",
        R"({"pid": 1.0, "acquired_at": "2026-11-27T05:15:43Z"})",
        R"({"pid": 1e2, "acquired_at": "2026-11-27T05:15:43Z"})",
        R"({"pid": 9223372036854775808, "acquired_at": "2026-11-27T05:15:43Z"})",
        R"({"pid": 1, "acquired_at": 5})",
        R"({"pid": 1, "acquired_at": "2026-11-27t05:15:43Z"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43z"})",
        R"({"pid": 1, "acquired_at": "2026-02-29T05:15:43Z"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:60Z"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43.Z"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43+0530"})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z", "session_id": 5})",
        R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z", "hostname": []})",
        R"([{"pid": 1, "acquired_at": "2026-11-27T05:15:43Z"}])",
        R"("text")",
    };
    for (const auto& doc : agree) {
        SCOPED_TRACE(doc);
        test::write_file(lock(), doc);
        const GoRead g = go_read(lock());
        const auto c = parse_lock(doc);
        ASSERT_EQ(g.ok, c.ok()) << "Go: " << (g.ok ? "accepts" : g.error)
                                << "\nC++: " << (c.ok() ? "accepts" : c.error().message);
        if (g.ok) {
            EXPECT_EQ(c->pid, g.pid);
            EXPECT_EQ(c->acquired_at, parse_rfc3339(g.acquired_at)) << g.acquired_at;
            EXPECT_EQ(c->session_id, g.session_id);
            EXPECT_EQ(c->hostname, g.hostname);
        }
    }
}

TEST_F(GoInterop, DeliberateDifferencesFromGoAreOnTheSafeSide) {
    // Go accepts these with values we cannot judge safely; we call them invalid, which means
    // reported and never removed (see lock_file.cpp).
    const std::vector<std::pair<std::string, std::string>> go_accepts_we_refuse = {
        {R"({"acquired_at": "2026-11-27T05:15:43Z"})", "\"pid\" is missing"},
        {R"({"pid": 1})", "\"acquired_at\" is missing"},
        {"null", "not a JSON object"},
        {"{}", "\"pid\" is missing"},
        {R"({"pid": 1, "acquired_at": "0001-01-01T00:00:00Z"})", "outside the supported range"},
        {R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43+99:99"})", "time zone offset"},
        {R"({"pid": 0, "acquired_at": "2026-11-27T05:15:43Z", "PID": 4242})", "more than once"},
        {R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43Z", "session_id": "\ud800"})",
         "not valid JSON"},
    };
    for (const auto& [doc, needle] : go_accepts_we_refuse) {
        SCOPED_TRACE(doc);
        test::write_file(lock(), doc);
        const GoRead g = go_read(lock());
        EXPECT_TRUE(g.ok) << "Go now rejects this too: " << g.error;
        const auto c = parse_lock(doc);
        ASSERT_FALSE(c.ok());
        EXPECT_EQ(c.error().kind, ErrorKind::invalid_lock);
        EXPECT_NE(c.error().message.find(needle), std::string::npos) << c.error().message;
    }
    // Go parses the raw JSON bytes of a time and so rejects escapes inside it; we unescape first.
    const std::string escaped = R"({"pid": 1, "acquired_at": "2026-11-27T05:15:43\u005a"})";
    test::write_file(lock(), escaped);
    EXPECT_FALSE(go_read(lock()).ok);
    const auto c = parse_lock(escaped);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->acquired_at, parse_rfc3339("2026-11-27T05:15:43Z"));
}

} // namespace
} // namespace agentlock
