// Unit tests of agentlockd's configuration: durations, the JSON file, flags, and how they merge.

#include "command_line.hpp"
#include "config.hpp"
#include "duration.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

namespace agentlock::daemon {
namespace {

using namespace std::chrono_literals;
using test::TempDir;
using test::write_file;

// ---------------------------------------------------------------------------------------------
// Durations

std::optional<std::chrono::milliseconds> duration(std::string_view text,
                                                  std::string* why = nullptr) {
    std::string error;
    auto d = parse_duration(text, error);
    if (why != nullptr) {
        *why = error;
    }
    return d;
}

TEST(Duration, ParsesEveryUnit) {
    EXPECT_EQ(duration("500ms"), 500ms);
    EXPECT_EQ(duration("30s"), 30s);
    EXPECT_EQ(duration("5m"), 5min);
    EXPECT_EQ(duration("1h"), 1h);
    EXPECT_EQ(duration("0s"), 0ms);
}

TEST(Duration, RejectsGarbageWithAReason) {
    std::string why;
    for (const char* bad : {"", "soon", "30", "s", "-5s", "5 s", "5x", "1.5s", "5sec", "ms"}) {
        EXPECT_FALSE(duration(bad, &why)) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
    EXPECT_FALSE(duration("5x", &why));
    EXPECT_NE(why.find("unknown unit \"x\""), std::string::npos) << why;
    EXPECT_FALSE(duration("30", &why));
    EXPECT_NE(why.find("missing unit"), std::string::npos) << why;
}

TEST(Duration, RejectsOverflowAndHugeValues) {
    std::string why;
    EXPECT_FALSE(duration("99999999999999999999999s", &why));
    EXPECT_NE(why.find("too large"), std::string::npos) << why;
    EXPECT_FALSE(duration("18446744073709551615ms", &why)); // UINT64_MAX
    EXPECT_FALSE(duration("9223372036854775807h", &why));   // overflows only after scaling
    EXPECT_NE(why.find("too large"), std::string::npos) << why;
    EXPECT_EQ(duration("168h"), k_max_duration);
    EXPECT_FALSE(duration("169h"));
}

TEST(Duration, FormatsWithTheLargestExactUnit) {
    EXPECT_EQ(format_duration(500ms), "500ms");
    EXPECT_EQ(format_duration(30s), "30s");
    EXPECT_EQ(format_duration(90s), "90s");
    EXPECT_EQ(format_duration(5min), "5m");
    EXPECT_EQ(format_duration(2h), "2h");
    EXPECT_EQ(format_duration(1500ms), "1500ms");
    EXPECT_EQ(format_duration(0ms), "0ms");
}

// ---------------------------------------------------------------------------------------------
// The config file

std::optional<Config> parse(std::string_view json, std::string* why = nullptr) {
    std::string error;
    auto c = parse_config(json, "/etc/agentlockd/test.json", error);
    if (why != nullptr) {
        *why = error;
    }
    return c;
}

TEST(ConfigFile, EmptyObjectGivesTheDefaults) {
    auto c = parse("{}");
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, Config{});
    EXPECT_EQ(c->interval, 30s);
    EXPECT_EQ(c->tmux_timeout, 3s);
    EXPECT_EQ(c->prune, default_prune_list());
    EXPECT_TRUE(c->one_file_system);
    EXPECT_FALSE(c->dry_run);
    EXPECT_FALSE(c->max_depth);
    EXPECT_EQ(c->log_level, LogLevel::info);
    EXPECT_EQ(c->log_format, LogFormat::automatic);
}

TEST(ConfigFile, ReadsEveryKey) {
    auto c = parse(R"({
        "roots": ["/srv/a", "/srv/b"],
        "interval": "5m",
        "tmux_socket": "agents",
        "tmux_timeout": "750ms",
        "dry_run": true,
        "prune": [".git", "target"],
        "max_depth": 6,
        "one_file_system": false,
        "log_level": "debug",
        "log_format": "json"
    })");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->roots, (std::vector<std::string>{"/srv/a", "/srv/b"}));
    EXPECT_EQ(c->interval, 5min);
    EXPECT_EQ(c->tmux_socket, "agents");
    EXPECT_EQ(c->tmux_socket_path, "");
    EXPECT_EQ(c->tmux_timeout, 750ms);
    EXPECT_TRUE(c->dry_run);
    EXPECT_EQ(c->prune, (std::vector<std::string>{".git", "target"}));
    EXPECT_EQ(c->max_depth, 6u);
    EXPECT_FALSE(c->one_file_system);
    EXPECT_EQ(c->log_level, LogLevel::debug);
    EXPECT_EQ(c->log_format, LogFormat::json);

    auto p = parse(R"({"tmux_socket_path": "/run/tmux/agents", "max_depth": null,
                       "log_format": "journal", "log_level": "warn"})");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->tmux_socket_path, "/run/tmux/agents");
    EXPECT_FALSE(p->max_depth);
    EXPECT_EQ(p->log_format, LogFormat::journal);
    EXPECT_EQ(p->log_level, LogLevel::warn);
}

TEST(ConfigFile, UnknownKeyIsNamedWithTheFile) {
    std::string why;
    EXPECT_FALSE(parse(R"({"roots": ["/a"], "intervall": "5s"})", &why));
    EXPECT_EQ(why.rfind("config /etc/agentlockd/test.json: key \"intervall\" is unknown", 0), 0u)
        << why;
}

TEST(ConfigFile, WrongTypesAreNamed) {
    struct Case {
        const char* json;
        const char* key;
    };
    for (const Case& c : {
             Case{R"({"roots": "/srv/a"})", "roots"},
             Case{R"({"roots": ["/a", 3]})", "roots"},
             Case{R"({"interval": 30})", "interval"},
             Case{R"({"interval": "30"})", "interval"},
             Case{R"({"tmux_socket": 1})", "tmux_socket"},
             Case{R"({"tmux_socket_path": false})", "tmux_socket_path"},
             Case{R"({"tmux_timeout": "soon"})", "tmux_timeout"},
             Case{R"({"dry_run": "yes"})", "dry_run"},
             Case{R"({"prune": [null]})", "prune"},
             Case{R"({"max_depth": -1})", "max_depth"},
             Case{R"({"max_depth": 1.5})", "max_depth"},
             Case{R"({"max_depth": 99999999999})", "max_depth"},
             Case{R"({"one_file_system": 1})", "one_file_system"},
             Case{R"({"log_level": "verbose"})", "log_level"},
             Case{R"({"log_format": ["json"]})", "log_format"},
         }) {
        std::string why;
        EXPECT_FALSE(parse(c.json, &why)) << c.json;
        EXPECT_NE(why.find(std::string("key \"") + c.key + "\""), std::string::npos)
            << c.json << " -> " << why;
        EXPECT_NE(why.find("/etc/agentlockd/test.json"), std::string::npos) << why;
    }
}

TEST(ConfigFile, BothTmuxSocketOptionsAreAnError) {
    std::string why;
    EXPECT_FALSE(parse(R"({"tmux_socket": "a", "tmux_socket_path": "/tmp/b"})", &why));
    EXPECT_NE(why.find("tmux_socket"), std::string::npos) << why;
    EXPECT_NE(why.find("tmux_socket_path"), std::string::npos) << why;
}

TEST(ConfigFile, SyntaxErrorsGiveLineAndColumn) {
    std::string why;
    EXPECT_FALSE(parse("{\n  \"roots\": [\n    garbage\n", &why));
    EXPECT_NE(why.find("not valid JSON at line 3"), std::string::npos) << why;
    EXPECT_FALSE(parse("{\"roots\": [\"/a\"]", &why)); // incomplete
    EXPECT_NE(why.find("not valid JSON"), std::string::npos) << why;
    EXPECT_FALSE(parse("[\"/a\"]", &why));
    EXPECT_NE(why.find("top level must be a JSON object"), std::string::npos) << why;
    EXPECT_FALSE(parse("", &why));
}

TEST(ConfigFile, LoadingAMissingFileFailsNamingIt) {
    TempDir tmp;
    std::string why;
    EXPECT_FALSE(load_config_file(tmp.sub("nope.json"), why));
    EXPECT_NE(why.find(tmp.sub("nope.json")), std::string::npos) << why;
    EXPECT_NE(why.find("No such file"), std::string::npos) << why;
    // A directory is not a config file.
    EXPECT_FALSE(load_config_file(tmp.path(), why));
    EXPECT_NE(why.find("not a regular file"), std::string::npos) << why;
}

TEST(ConfigFile, LoadsAFile) {
    TempDir tmp;
    write_file(tmp.sub("c.json"), R"({"roots": ["/srv/agents"], "interval": "10s"})");
    std::string why;
    auto c = load_config_file(tmp.sub("c.json"), why);
    ASSERT_TRUE(c) << why;
    EXPECT_EQ(c->roots, std::vector<std::string>{"/srv/agents"});
    EXPECT_EQ(c->interval, 10s);
}

// ---------------------------------------------------------------------------------------------
// Merging and validation

TEST(ConfigMerge, FlagsWinOverTheFile) {
    TempDir tmp;
    write_file(tmp.sub("c.json"), R"({"roots": ["/srv/file"], "interval": "10s",
        "tmux_socket_path": "/tmp/file.sock", "dry_run": true, "prune": [".git"],
        "max_depth": 3, "one_file_system": true, "log_level": "debug", "log_format": "json"})");
    ConfigOverrides o;
    o.roots = {"/srv/flag1", "/srv/flag2"};
    o.interval = 2s;
    o.tmux_socket = "flagsock";
    o.dry_run = false;
    o.prune = std::vector<std::string>{"node_modules"};
    o.max_depth = 9;
    o.one_file_system = false;
    o.log_level = LogLevel::error;
    o.log_format = LogFormat::text;
    std::string why;
    auto c = resolve_config(tmp.sub("c.json"), o, why);
    ASSERT_TRUE(c) << why;
    EXPECT_EQ(c->roots, (std::vector<std::string>{"/srv/flag1", "/srv/flag2"}));
    EXPECT_EQ(c->interval, 2s);
    EXPECT_EQ(c->tmux_socket, "flagsock");
    EXPECT_EQ(c->tmux_socket_path, "") << "a socket flag replaces the file's socket choice";
    EXPECT_FALSE(c->dry_run);
    EXPECT_EQ(c->prune, std::vector<std::string>{"node_modules"});
    EXPECT_EQ(c->max_depth, 9u);
    EXPECT_FALSE(c->one_file_system);
    EXPECT_EQ(c->log_level, LogLevel::error);
    EXPECT_EQ(c->log_format, LogFormat::text);
}

TEST(ConfigMerge, UnsetFlagsKeepTheFileValues) {
    TempDir tmp;
    write_file(tmp.sub("c.json"), R"({"roots": ["/srv/file"], "interval": "10s",
        "tmux_socket": "filesock"})");
    ConfigOverrides o;
    o.dry_run = true;
    std::string why;
    auto c = resolve_config(tmp.sub("c.json"), o, why);
    ASSERT_TRUE(c) << why;
    EXPECT_EQ(c->roots, std::vector<std::string>{"/srv/file"});
    EXPECT_EQ(c->interval, 10s);
    EXPECT_EQ(c->tmux_socket, "filesock");
    EXPECT_TRUE(c->dry_run);
}

TEST(ConfigMerge, AtLeastOneRootIsRequired) {
    std::string why;
    EXPECT_FALSE(resolve_config("", ConfigOverrides{}, why));
    EXPECT_NE(why.find("--root"), std::string::npos) << why;
}

TEST(ConfigMerge, RootsBecomeAbsoluteWithoutTrailingSlashesOrDuplicates) {
    ConfigOverrides o;
    o.roots = {"/srv/a/", "/srv/a", "relative/dir", "/"};
    std::string why;
    auto c = resolve_config("", o, why);
    ASSERT_TRUE(c) << why;
    ASSERT_EQ(c->roots.size(), 3u);
    EXPECT_EQ(c->roots[0], "/srv/a");
    EXPECT_EQ(c->roots[1].front(), '/');
    EXPECT_NE(c->roots[1].find("relative/dir"), std::string::npos);
    EXPECT_EQ(c->roots[2], "/");
}

TEST(ConfigMerge, RejectsNonsense) {
    std::string why;
    Config c;
    c.roots = {"/srv"};
    c.interval = 1ms;
    EXPECT_FALSE(finish_config(c, why));
    EXPECT_NE(why.find("interval"), std::string::npos) << why;
    c = Config{};
    c.roots = {"/srv"};
    c.prune = {"a/b"};
    EXPECT_FALSE(finish_config(c, why));
    c.prune = {""};
    EXPECT_FALSE(finish_config(c, why));
    c = Config{};
    c.roots = {""};
    EXPECT_FALSE(finish_config(c, why));
    c = Config{};
    c.roots = {"/srv"};
    c.tmux_socket = "a/b";
    EXPECT_FALSE(finish_config(c, why));
    EXPECT_NE(why.find("--tmux-socket-path"), std::string::npos) << why;
}

TEST(ConfigMerge, PassOptionsCarryTheWalkSettings) {
    Config c;
    c.roots = {"/srv"};
    c.prune = {"x"};
    c.max_depth = 4;
    c.one_file_system = false;
    c.dry_run = true;
    PassOptions p = pass_options_of(c);
    EXPECT_EQ(p.roots, c.roots);
    EXPECT_EQ(p.walk.prune, c.prune);
    EXPECT_EQ(p.walk.max_depth, 4u);
    EXPECT_FALSE(p.walk.one_file_system);
    EXPECT_TRUE(p.dry_run);
    EXPECT_EQ(p.cancel, nullptr);
    c.tmux_socket = "n";
    EXPECT_EQ(describe_tmux_server(c), "-L n");
    EXPECT_EQ(tmux_server_of(c).socket_name, "n");
}

TEST(ConfigMerge, ChangesListWhatDiffers) {
    Config a;
    a.roots = {"/srv"};
    Config b = a;
    Fields none = config_changes(a, b);
    ASSERT_EQ(none.size(), 1u);
    EXPECT_EQ(none[0], (std::pair<std::string, std::string>{"changed", "none"}));
    b.interval = 5s;
    b.dry_run = true;
    Fields some = config_changes(a, b);
    ASSERT_EQ(some.size(), 3u);
    EXPECT_EQ(some[0].second, "interval,dry_run");
    EXPECT_EQ(some[1], (std::pair<std::string, std::string>{"interval", "5s"}));
    EXPECT_EQ(some[2], (std::pair<std::string, std::string>{"dry_run", "true"}));
}

// ---------------------------------------------------------------------------------------------
// The command line

Result<CommandLine> cli(std::vector<std::string> args, std::string* why = nullptr) {
    auto cl = parse_command_line(args);
    if (why != nullptr) {
        *why = cl ? std::string() : cl.error().message;
    }
    return cl;
}

TEST(CommandLine, EveryFlag) {
    auto cl = cli({"--config",
                   "/c.json",
                   "--root",
                   "/a",
                   "--root=/b",
                   "--interval",
                   "5s",
                   "--tmux-socket",
                   "s",
                   "--tmux-timeout=2s",
                   "--dry-run",
                   "--prune",
                   ".git",
                   "--prune",
                   "x",
                   "--max-depth",
                   "7",
                   "--no-one-file-system",
                   "--log-level",
                   "trace",
                   "--log-format=json"});
    ASSERT_TRUE(cl);
    EXPECT_EQ(cl->mode, Mode::run);
    EXPECT_EQ(cl->config_path, "/c.json");
    const ConfigOverrides& o = cl->overrides;
    EXPECT_EQ(o.roots, (std::vector<std::string>{"/a", "/b"}));
    EXPECT_EQ(o.interval, 5s);
    EXPECT_EQ(o.tmux_socket, "s");
    EXPECT_FALSE(o.tmux_socket_path);
    EXPECT_EQ(o.tmux_timeout, 2s);
    EXPECT_EQ(o.dry_run, true);
    EXPECT_EQ(o.prune, (std::vector<std::string>{".git", "x"}));
    EXPECT_EQ(o.max_depth, 7u);
    EXPECT_EQ(o.one_file_system, false);
    EXPECT_EQ(o.log_level, LogLevel::trace);
    EXPECT_EQ(o.log_format, LogFormat::json);

    auto p =
        cli({"--tmux-socket-path", "/tmp/s", "--one-file-system", "--no-prune", "--no-dry-run"});
    ASSERT_TRUE(p);
    EXPECT_EQ(p->overrides.tmux_socket_path, "/tmp/s");
    EXPECT_EQ(p->overrides.one_file_system, true);
    EXPECT_EQ(p->overrides.prune, std::vector<std::string>{});
    EXPECT_EQ(p->overrides.dry_run, false);
    EXPECT_FALSE(p->overrides.roots);
}

TEST(CommandLine, Modes) {
    EXPECT_EQ(cli({"--once", "--json", "--root", "/a"})->mode, Mode::once);
    EXPECT_TRUE(cli({"--once", "--json"})->json);
    EXPECT_EQ(cli({"--check-config"})->mode, Mode::check_config);
    EXPECT_EQ(cli({"--version"})->mode, Mode::version);
    EXPECT_EQ(cli({"--help"})->mode, Mode::help);
    EXPECT_EQ(cli({"-h"})->mode, Mode::help);
    EXPECT_EQ(cli({})->mode, Mode::run);
}

TEST(CommandLine, ErrorsSayWhat) {
    std::string why;
    EXPECT_FALSE(cli({"--no-such-flag"}, &why));
    EXPECT_NE(why.find("--no-such-flag"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--interval"}, &why));
    EXPECT_NE(why.find("--interval needs a value"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--interval", "soon"}, &why));
    EXPECT_NE(why.find("--interval"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--max-depth", "-1"}, &why));
    EXPECT_FALSE(cli({"--max-depth", "3x"}, &why));
    EXPECT_FALSE(cli({"--log-level", "loud"}, &why));
    EXPECT_FALSE(cli({"--log-format", "xml"}, &why));
    EXPECT_FALSE(cli({"--json"}, &why));
    EXPECT_NE(why.find("--once"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--once", "--check-config"}, &why));
    EXPECT_FALSE(cli({"--tmux-socket", "a", "--tmux-socket-path", "/b"}, &why));
    EXPECT_FALSE(cli({"stray"}, &why));
    EXPECT_NE(why.find("stray"), std::string::npos) << why;
    EXPECT_FALSE(cli({"--dry-run=yes"}, &why));
    EXPECT_FALSE(cli({"--config", ""}, &why));
}

// A bad command line is the caller's input: an `invalid` error whose path is the flag at fault.
TEST(CommandLine, ErrorsAreInvalidInputAboutTheFlag) {
    for (const auto& [args, flag] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"--root", "/a", "--interval", "soon"}, "--interval"},
             {{"--max-depth", "3x"}, "--max-depth"},
             {{"--dry-run=yes"}, "--dry-run"},
             {{"--once", "--check-config"}, "--check-config"},
             {{"--root", "/a", "stray"}, "stray"},
             {{"--no-such-flag"}, "--no-such-flag"},
         }) {
        auto cl = parse_command_line(args);
        ASSERT_FALSE(cl) << flag;
        EXPECT_EQ(cl.error().kind, ErrorKind::invalid) << cl.error().message;
        EXPECT_EQ(cl.error().path, flag) << cl.error().message;
        EXPECT_NE(cl.error().message.find(flag), std::string::npos) << cl.error().message;
    }
}

TEST(CommandLine, HelpDocumentsTheContract) {
    const std::string help = help_text();
    for (const char* flag : {"--config",
                             "--root",
                             "--interval",
                             "--tmux-socket",
                             "--tmux-socket-path",
                             "--tmux-timeout",
                             "--dry-run",
                             "--prune",
                             "--max-depth",
                             "--one-file-system",
                             "--no-one-file-system",
                             "--log-level",
                             "--log-format",
                             "--once",
                             "--json",
                             "--check-config",
                             "--version",
                             "SIGHUP",
                             "SIGUSR1",
                             "state=resolved",
                             "Exit codes"}) {
        EXPECT_NE(help.find(flag), std::string::npos) << flag;
    }
    EXPECT_EQ(version_text().rfind("agentlockd ", 0), 0u);
}

} // namespace
} // namespace agentlock::daemon
