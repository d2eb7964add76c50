// Unit tests of the configuration (lib/, shared by agentlockd and agentlock): durations, the
// JSON file, command-line overrides, and how they merge.

#include "test_support.hpp"

#include <agentlock/config.hpp>
#include <agentlock/duration.hpp>

#include <gtest/gtest.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::TempDir;
using test::write_file;

// ---------------------------------------------------------------------------------------------
// Durations

std::optional<std::chrono::milliseconds> duration(std::string_view text,
                                                  std::string* why = nullptr) {
    auto d = parse_duration(text);
    if (why != nullptr) {
        *why = d ? std::string() : d.error().message;
    }
    if (!d) {
        EXPECT_EQ(d.error().kind, ErrorKind::invalid);
    }
    return d ? std::optional(*d) : std::nullopt;
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
    auto c = parse_config(json, "/etc/agentlockd/test.json");
    if (why != nullptr) {
        *why = c ? std::string() : c.error().message;
    }
    if (!c) {
        EXPECT_EQ(c.error().kind, ErrorKind::invalid);
        EXPECT_EQ(c.error().path, "/etc/agentlockd/test.json");
        return std::nullopt;
    }
    return *c;
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
    auto missing = load_config_file(tmp.sub("nope.json"));
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind, ErrorKind::io);
    EXPECT_EQ(missing.error().code, std::errc::no_such_file_or_directory);
    EXPECT_EQ(missing.error().path, tmp.sub("nope.json"));
    const std::string& why = missing.error().message;
    EXPECT_NE(why.find(tmp.sub("nope.json")), std::string::npos) << why;
    EXPECT_NE(why.find("No such file"), std::string::npos) << why;
    // A directory is not a config file.
    auto directory = load_config_file(tmp.path());
    ASSERT_FALSE(directory);
    EXPECT_EQ(directory.error().kind, ErrorKind::invalid);
    EXPECT_NE(directory.error().message.find("not a regular file"), std::string::npos)
        << directory.error().message;
}

TEST(ConfigFile, LoadsAFile) {
    TempDir tmp;
    write_file(tmp.sub("c.json"), R"({"roots": ["/srv/agents"], "interval": "10s"})");
    auto c = load_config_file(tmp.sub("c.json"));
    ASSERT_TRUE(c) << c.error().message;
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
    auto c = resolve_config(tmp.sub("c.json"), o);
    ASSERT_TRUE(c) << c.error().message;
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
    auto c = resolve_config(tmp.sub("c.json"), o);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->roots, std::vector<std::string>{"/srv/file"});
    EXPECT_EQ(c->interval, 10s);
    EXPECT_EQ(c->tmux_socket, "filesock");
    EXPECT_TRUE(c->dry_run);
}

TEST(ConfigMerge, AtLeastOneRootIsRequired) {
    auto c = resolve_config("", ConfigOverrides{});
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().kind, ErrorKind::invalid);
    EXPECT_EQ(c.error().path, "roots");
    EXPECT_NE(c.error().message.find("--root"), std::string::npos) << c.error().message;
}

TEST(ConfigMerge, RootsBecomeAbsoluteWithoutTrailingSlashesOrDuplicates) {
    ConfigOverrides o;
    o.roots = {"/srv/a/", "/srv/a", "relative/dir", "/"};
    auto c = resolve_config("", o);
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_EQ(c->roots.size(), 3u);
    EXPECT_EQ(c->roots[0], "/srv/a");
    EXPECT_EQ(c->roots[1].front(), '/');
    EXPECT_NE(c->roots[1].find("relative/dir"), std::string::npos);
    EXPECT_EQ(c->roots[2], "/");
}

// The key finish_config blames, or "" when it accepts the config.
std::string rejected_key(Config c, std::string* why = nullptr) {
    Status s = finish_config(c);
    if (s) {
        return "";
    }
    EXPECT_EQ(s.error().kind, ErrorKind::invalid);
    if (why != nullptr) {
        *why = s.error().message;
    }
    return s.error().path;
}

TEST(ConfigMerge, RejectsNonsense) {
    std::string why;
    Config c;
    c.roots = {"/srv"};
    EXPECT_EQ(rejected_key(c), "");
    c.interval = 1ms;
    EXPECT_EQ(rejected_key(c, &why), "interval");
    EXPECT_NE(why.find("interval"), std::string::npos) << why;
    c = Config{};
    c.roots = {"/srv"};
    c.prune = {"a/b"};
    EXPECT_EQ(rejected_key(c), "prune");
    c.prune = {""};
    EXPECT_EQ(rejected_key(c), "prune");
    c = Config{};
    c.roots = {""};
    EXPECT_EQ(rejected_key(c), "roots");
    c = Config{};
    c.roots = {"/srv"};
    c.tmux_socket = "a/b";
    EXPECT_EQ(rejected_key(c, &why), "tmux_socket");
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

TEST(ConfigMerge, MetricsFileIsAPromFileMadeAbsolute) {
    auto c = parse_config(R"({"roots": ["/srv"], "metrics_file": "m/agentlock.prom"})", "f.json");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(finish_config(*c));
    EXPECT_EQ(c->metrics_file.front(), '/');
    EXPECT_NE(c->metrics_file.find("/m/agentlock.prom"), std::string::npos) << c->metrics_file;
    EXPECT_EQ(test::field(config_fields(*c), "metrics_file"), c->metrics_file);

    auto wrong = parse_config(R"({"roots": ["/srv"], "metrics_file": 1})", "f.json");
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("\"metrics_file\""), std::string::npos);

    std::string why;
    Config d;
    d.roots = {"/srv"};
    EXPECT_EQ(test::field(config_fields(d), "metrics_file"), "none");
    for (const char* bad : {"/var/lib/agentlock.txt", "/var/lib/.prom", "/var/lib/agentlock"}) {
        d.metrics_file = bad;
        EXPECT_EQ(rejected_key(d, &why), "metrics_file") << bad;
        EXPECT_NE(why.find(".prom"), std::string::npos) << why;
    }
    ConfigOverrides o;
    o.metrics_file = "/x/a.prom";
    apply_overrides(d, o);
    EXPECT_EQ(d.metrics_file, "/x/a.prom");
    EXPECT_EQ(rejected_key(d), "");
}

} // namespace
} // namespace agentlock
