#include <agentlock/config.hpp>
#include <agentlock/duration.hpp>
#include <agentlock/scope.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock {

namespace {

using namespace std::chrono_literals;

// The largest config file we read; a real one is a few hundred bytes.
constexpr std::size_t k_max_config_bytes = 1024 * 1024;

std::string quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

std::string describe_kind(const boost::json::value& v) {
    switch (v.kind()) {
    case boost::json::kind::null:
        return "null";
    case boost::json::kind::bool_:
        return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
        return "a number";
    case boost::json::kind::string:
        return "a string";
    case boost::json::kind::array:
        return "an array";
    case boost::json::kind::object:
        return "an object";
    }
    return "something else";
}

// Reads values of one config object, naming the file and key in every error.
class KeyReader {
public:
    explicit KeyReader(const std::string& origin) : m_origin(origin) {}

    bool fail(std::string_view key, const std::string& what) {
        m_message = "config " + m_origin + ": key " + quote(key) + " " + what;
        return false;
    }

    /// The error of the last failed read.
    Error error() const { return invalid_input(m_origin, m_message); }

    bool wrong_type(std::string_view key, const boost::json::value& v, std::string_view want) {
        return fail(key, "must be " + std::string(want) + ", not " + describe_kind(v));
    }

    bool read_string(std::string_view key, const boost::json::value& v, std::string& out) {
        if (!v.is_string()) {
            return wrong_type(key, v, "a string");
        }
        out = std::string(v.get_string());
        return true;
    }

    bool read_bool(std::string_view key, const boost::json::value& v, bool& out) {
        if (!v.is_bool()) {
            return wrong_type(key, v, "true or false");
        }
        out = v.get_bool();
        return true;
    }

    bool read_duration(std::string_view key, const boost::json::value& v,
                       std::chrono::milliseconds& out) {
        if (!v.is_string()) {
            return wrong_type(key, v, "a duration string such as \"30s\"");
        }
        auto d = parse_duration(std::string_view(v.get_string()));
        if (!d) {
            return fail(key, "is not a duration: " + d.error().message);
        }
        out = *d;
        return true;
    }

    bool read_string_list(std::string_view key, const boost::json::value& v,
                          std::vector<std::string>& out) {
        if (!v.is_array()) {
            return wrong_type(key, v, "an array of strings");
        }
        out.clear();
        for (const auto& item : v.get_array()) {
            if (!item.is_string()) {
                return fail(key, "must be an array of strings, but holds " + describe_kind(item));
            }
            out.emplace_back(item.get_string());
        }
        return true;
    }

    bool read_max_depth(std::string_view key, const boost::json::value& v,
                        std::optional<unsigned>& out) {
        if (v.is_null()) {
            out.reset();
            return true;
        }
        if (v.is_int64() && v.get_int64() >= 0 && v.get_int64() <= UINT_MAX) {
            out = static_cast<unsigned>(v.get_int64());
            return true;
        }
        if (v.is_uint64() && v.get_uint64() <= UINT_MAX) {
            out = static_cast<unsigned>(v.get_uint64());
            return true;
        }
        return fail(key, "must be a whole number from 0 to " + std::to_string(UINT_MAX) +
                             " or null, not " + boost::json::serialize(v));
    }

    bool read_enum(std::string_view key, const boost::json::value& v, std::string_view choices,
                   std::string& out) {
        if (!v.is_string()) {
            return wrong_type(key, v, "one of " + std::string(choices));
        }
        out = std::string(v.get_string());
        return true;
    }

    /// `roots`: an array of paths, or of objects naming a root's own tmux server.
    bool read_roots(std::string_view key, const boost::json::value& v,
                    std::vector<std::string>& roots, std::map<std::string, RootTmux>& servers) {
        if (!v.is_array()) {
            return wrong_type(key, v, "an array of paths or {\"path\": ...} objects");
        }
        roots.clear();
        servers.clear();
        std::map<std::string, std::optional<RootTmux>> seen; // what each root was given
        for (const auto& item : v.get_array()) {
            std::string path;
            std::optional<RootTmux> server;
            if (item.is_string()) {
                path = std::string(item.get_string());
            } else if (item.is_object()) {
                server.emplace();
                if (!read_root_object(key, item.get_object(), path, *server)) {
                    return false;
                }
                if (*server == RootTmux{}) {
                    server.reset(); // {"path": DIR} alone is a plain root
                }
            } else {
                return fail(key,
                            "must be an array of paths or {\"path\": ...} objects, but holds " +
                                describe_kind(item));
            }
            if (auto [it, added] = seen.emplace(path, server); !added) {
                if (it->second != server) {
                    return fail(key,
                                "lists root " + quote(path) + " twice with different tmux servers");
                }
                continue;
            }
            roots.push_back(path);
            if (server) {
                servers.emplace(path, *server);
            }
        }
        return true;
    }

private:
    // One {"path": DIR, "tmux_socket": NAME | "tmux_socket_path": P | "gastown": true} entry.
    bool read_root_object(std::string_view key, const boost::json::object& o, std::string& path,
                          RootTmux& server) {
        const std::string k_known = "(known keys: path, tmux_socket, tmux_socket_path, gastown)";
        const auto* given_path = o.if_contains("path");
        if (given_path == nullptr || !given_path->is_string()) {
            return fail(key, given_path == nullptr
                                 ? "holds an object without \"path\" " + k_known
                                 : "holds an object whose \"path\" must be a string, not " +
                                       describe_kind(*given_path));
        }
        path = std::string(given_path->get_string());
        const std::string where = "root " + quote(path) + ": ";
        for (const auto& [raw_name, value] : o) {
            const std::string_view name(raw_name.data(), raw_name.size());
            auto bad = [&](const std::string& what) {
                return fail(key, where + "key " + quote(name) + " " + what);
            };
            if (name == "path") {
                continue;
            }
            if (name == "tmux_socket" || name == "tmux_socket_path") {
                if (!value.is_string()) {
                    return bad("must be a string, not " + describe_kind(value));
                }
                if (value.get_string().empty()) {
                    return bad("is empty");
                }
                (name == "tmux_socket" ? server.tmux_socket : server.tmux_socket_path) =
                    std::string(value.get_string());
            } else if (name == "gastown") {
                if (!value.is_bool()) {
                    return bad("must be true or false, not " + describe_kind(value));
                }
                server.gastown = value.get_bool();
            } else {
                return bad("is unknown " + k_known);
            }
        }
        const int named = (server.tmux_socket.empty() ? 0 : 1) +
                          (server.tmux_socket_path.empty() ? 0 : 1) + (server.gastown ? 1 : 0);
        if (named > 1) {
            return fail(key, where + "give one of \"tmux_socket\", \"tmux_socket_path\" and "
                                     "\"gastown\": true, not several");
        }
        if (server.tmux_socket.find('/') != std::string::npos) {
            return fail(key, where + "key \"tmux_socket\": tmux socket name " +
                                 quote(server.tmux_socket) +
                                 " contains '/': use \"tmux_socket_path\" for a path");
        }
        return true;
    }

    const std::string& m_origin;
    std::string m_message;
};

// Line and column (1-based) of a byte offset, for JSON syntax errors.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
    std::size_t line = 1;
    std::size_t column = 1;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

std::string strip_trailing_slashes(std::string path) {
    while (path.size() > 1 && path.back() == '/') {
        path.pop_back();
    }
    return path;
}

} // namespace

Result<Config> parse_config(std::string_view json, const std::string& origin) {
    boost::json::stream_parser parser;
    boost::system::error_code ec;
    const std::size_t consumed = parser.write(json.data(), json.size(), ec);
    std::size_t where = consumed;
    if (!ec) {
        parser.finish(ec);
        where = json.size();
    }
    if (ec) {
        const auto [line, column] = line_and_column(json, where);
        return invalid_input(origin, "config " + origin + ": not valid JSON at line " +
                                         std::to_string(line) + ", column " +
                                         std::to_string(column) + ": " + ec.message());
    }
    const boost::json::value doc = parser.release();
    if (!doc.is_object()) {
        return invalid_input(origin, "config " + origin +
                                         ": the top level must be a JSON object, not " +
                                         describe_kind(doc));
    }

    Config config;
    KeyReader reader(origin);
    for (const auto& [raw_key, v] : doc.get_object()) {
        const std::string_view key(raw_key.data(), raw_key.size());
        bool ok = true;
        if (key == "roots") {
            ok = reader.read_roots(key, v, config.roots, config.root_tmux);
        } else if (key == "interval") {
            ok = reader.read_duration(key, v, config.interval);
            config.interval_set = true;
        } else if (key == "full_pass_interval") {
            ok = reader.read_duration(key, v, config.full_pass_interval);
            config.full_pass_interval_set = true;
        } else if (key == "events") {
            ok = reader.read_bool(key, v, config.events);
        } else if (key == "tmux_socket") {
            ok = reader.read_string(key, v, config.tmux_socket);
        } else if (key == "tmux_socket_path") {
            ok = reader.read_string(key, v, config.tmux_socket_path);
        } else if (key == "tmux_timeout") {
            ok = reader.read_duration(key, v, config.tmux_timeout);
        } else if (key == "tmux_created_slack") {
            ok = reader.read_duration(key, v, config.tmux_created_slack);
        } else if (key == "dry_run") {
            ok = reader.read_bool(key, v, config.dry_run);
        } else if (key == "prune") {
            ok = reader.read_string_list(key, v, config.prune);
        } else if (key == "max_depth") {
            ok = reader.read_max_depth(key, v, config.max_depth);
        } else if (key == "one_file_system") {
            ok = reader.read_bool(key, v, config.one_file_system);
        } else if (key == "log_level") {
            static constexpr std::string_view k_levels = "trace, debug, info, warn, error";
            std::string text;
            ok = reader.read_enum(key, v, k_levels, text);
            if (ok) {
                auto level = parse_log_level(text);
                ok = level ? (config.log_level = *level, true)
                           : reader.fail(key, "must be one of " + std::string(k_levels) + ", not " +
                                                  quote(text));
            }
        } else if (key == "log_format") {
            static constexpr std::string_view k_formats = "auto, text, json, journal";
            std::string text;
            ok = reader.read_enum(key, v, k_formats, text);
            if (ok) {
                auto format = parse_log_format(text);
                ok = format ? (config.log_format = *format, true)
                            : reader.fail(key, "must be one of " + std::string(k_formats) +
                                                   ", not " + quote(text));
            }
        } else if (key == "metrics_file") {
            ok = reader.read_string(key, v, config.metrics_file);
        } else if (key == "fleet") {
            auto fleet = parse_fleet_config(v, origin);
            if (!fleet) {
                return fleet.error();
            }
            config.fleet = std::move(*fleet);
        } else {
            ok = reader.fail(key, "is unknown (known keys: roots, interval, tmux_socket, "
                                  "tmux_socket_path, tmux_timeout, dry_run, prune, max_depth, "
                                  "one_file_system, log_level, log_format, events, "
                                  "full_pass_interval, metrics_file, tmux_created_slack, fleet)");
        }
        if (!ok) {
            return reader.error();
        }
    }
    if (!config.tmux_socket.empty() && !config.tmux_socket_path.empty()) {
        return invalid_input(origin, "config " + origin +
                                         ": keys \"tmux_socket\" and \"tmux_socket_path\" are "
                                         "both set; use one");
    }
    return config;
}

Result<Config> load_config_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        const int saved = errno;
        return io_error("open config", path, saved);
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int saved = errno;
        return io_error("stat config", path, saved);
    }
    if (!S_ISREG(st.st_mode)) {
        return invalid_input(path, "config " + path + ": not a regular file");
    }
    std::string text;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            const int saved = errno;
            if (saved == EINTR) {
                continue;
            }
            return io_error("read config", path, saved);
        }
        if (n == 0) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > k_max_config_bytes) {
            return invalid_input(path, "config " + path + ": larger than " +
                                           std::to_string(k_max_config_bytes) + " bytes");
        }
    }
    return parse_config(text, path);
}

void apply_overrides(Config& config, const ConfigOverrides& o) {
    if (o.roots) {
        config.roots = *o.roots;
        config.root_tmux.clear();
    }
    if (o.interval) {
        config.interval = *o.interval;
        config.interval_set = true;
    }
    if (o.full_pass_interval) {
        config.full_pass_interval = *o.full_pass_interval;
        config.full_pass_interval_set = true;
    }
    if (o.events) {
        config.events = *o.events;
    }
    if (o.tmux_socket) {
        config.tmux_socket = *o.tmux_socket;
        config.tmux_socket_path.clear();
    }
    if (o.tmux_socket_path) {
        config.tmux_socket_path = *o.tmux_socket_path;
        config.tmux_socket.clear();
    }
    if (o.tmux_timeout) {
        config.tmux_timeout = *o.tmux_timeout;
    }
    if (o.tmux_created_slack) {
        config.tmux_created_slack = *o.tmux_created_slack;
    }
    if (o.dry_run) {
        config.dry_run = *o.dry_run;
    }
    if (o.prune) {
        config.prune = *o.prune;
    }
    if (o.max_depth) {
        config.max_depth = *o.max_depth;
    }
    if (o.one_file_system) {
        config.one_file_system = *o.one_file_system;
    }
    if (o.log_level) {
        config.log_level = *o.log_level;
    }
    if (o.log_format) {
        config.log_format = *o.log_format;
    }
    if (o.metrics_file) {
        config.metrics_file = *o.metrics_file;
    }
}

Status finish_config(Config& config) {
    if (config.roots.empty()) {
        return invalid_input(
            "roots", "no worker root given: set \"roots\" in the config file or pass --root DIR");
    }
    std::vector<std::string> roots;
    std::map<std::string, RootTmux> root_tmux;
    for (const auto& root : config.roots) {
        if (root.empty()) {
            return invalid_input("roots", "a worker root is an empty string");
        }
        std::error_code ec;
        std::string absolute = std::filesystem::absolute(root, ec).string();
        if (ec) {
            return invalid_input("roots", "make root " + root + " absolute: " + ec.message());
        }
        absolute = strip_trailing_slashes(std::move(absolute));
        const auto own = config.root_tmux.find(root);
        const bool listed = std::find(roots.begin(), roots.end(), absolute) != roots.end();
        if (listed) {
            const auto before = root_tmux.find(absolute);
            const bool same = own == config.root_tmux.end()
                                  ? before == root_tmux.end()
                                  : before != root_tmux.end() && before->second == own->second;
            if (!same) {
                return invalid_input("roots", "root " + absolute +
                                                  " is listed twice with different tmux servers");
            }
            continue;
        }
        if (own != config.root_tmux.end()) {
            root_tmux.emplace(absolute, own->second);
        }
        roots.push_back(std::move(absolute));
    }
    config.roots = std::move(roots);
    config.root_tmux = std::move(root_tmux);
    if (!config.tmux_socket.empty() && !config.tmux_socket_path.empty()) {
        return invalid_input("tmux_socket_path",
                             "tmux_socket and tmux_socket_path are both set; use one");
    }
    if (config.tmux_socket.find('/') != std::string::npos) {
        return invalid_input(
            "tmux_socket",
            "tmux socket name " + quote(config.tmux_socket) +
                " contains '/': use tmux_socket_path (--tmux-socket-path) for a path");
    }
    if (config.interval < k_min_interval) {
        return invalid_input("interval", "interval " + format_duration(config.interval) +
                                             " is too short (at least " +
                                             format_duration(k_min_interval) + ")");
    }
    if (config.full_pass_interval < k_min_interval) {
        return invalid_input("full_pass_interval", "full_pass_interval " +
                                                       format_duration(config.full_pass_interval) +
                                                       " is too short (at least " +
                                                       format_duration(k_min_interval) + ")");
    }
    if (config.tmux_timeout < k_min_interval) {
        return invalid_input(
            "tmux_timeout", "tmux_timeout " + format_duration(config.tmux_timeout) +
                                " is too short (at least " + format_duration(k_min_interval) + ")");
    }
    for (const auto& name : config.prune) {
        if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
            return invalid_input("prune",
                                 "prune entry " + quote(name) + " is not a directory name");
        }
    }
    if (!config.metrics_file.empty()) {
        // node_exporter's textfile collector reads only files named *.prom.
        const std::filesystem::path file(config.metrics_file);
        if (file.extension() != ".prom" || file.stem().empty()) {
            return invalid_input("metrics_file",
                                 "metrics_file " + quote(config.metrics_file) +
                                     " must name a file ending in .prom (node_exporter's "
                                     "textfile collector reads no other)");
        }
        std::error_code ec;
        config.metrics_file = std::filesystem::absolute(file, ec).string();
        if (ec) {
            return invalid_input("metrics_file", "make metrics_file " + config.metrics_file +
                                                     " absolute: " + ec.message());
        }
    }
    return {};
}

Result<Config> resolve_config(const std::string& path, const ConfigOverrides& overrides) {
    Config config;
    if (!path.empty()) {
        auto loaded = load_config_file(path);
        if (!loaded) {
            return loaded.error();
        }
        config = std::move(*loaded);
    }
    apply_overrides(config, overrides);
    if (Status finished = finish_config(config); !finished) {
        return finished.error();
    }
    return config;
}

std::string default_config_path_if_present() {
    std::string path(k_default_config_path);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        return path;
    }
    return {};
}

std::string join_list(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += ',';
        }
        out += item;
    }
    return out;
}

namespace {

// config_fields' root_tmux: "ROOT=SERVER,..." for the roots with a server of their own.
std::string describe_root_servers(const Config& c) {
    std::string out;
    for (const auto& root : c.roots) {
        const auto own = c.root_tmux.find(root);
        if (own == c.root_tmux.end()) {
            continue;
        }
        out += out.empty() ? "" : ",";
        out += root + "=" + (own->second.gastown ? "gastown " : "") +
               describe_tmux_server(tmux_server_of_root(c, root));
    }
    return out.empty() ? "none" : out;
}

} // namespace

Fields config_fields(const Config& c) {
    return {
        {"roots", join_list(c.roots)},
        {"interval", format_duration(c.interval)},
        {"tmux_socket", c.tmux_socket},
        {"tmux_socket_path", c.tmux_socket_path},
        {"root_tmux", describe_root_servers(c)},
        {"tmux_timeout", format_duration(c.tmux_timeout)},
        {"dry_run", c.dry_run ? "true" : "false"},
        {"prune", join_list(c.prune)},
        {"max_depth", c.max_depth ? std::to_string(*c.max_depth) : "none"},
        {"one_file_system", c.one_file_system ? "true" : "false"},
        {"log_level", std::string(to_string(c.log_level))},
        {"log_format", std::string(to_string(c.log_format))},
        {"events", c.events ? "true" : "false"},
        {"full_pass_interval", format_duration(c.full_pass_interval)},
        {"metrics_file", c.metrics_file.empty() ? "none" : c.metrics_file},
        {"tmux_created_slack", format_duration(c.tmux_created_slack)},
    };
}

std::chrono::milliseconds pass_period(const Config& config, bool events_active) {
    if (!events_active) {
        return config.interval;
    }
    if (config.interval_set && !config.full_pass_interval_set) {
        return config.interval;
    }
    return config.full_pass_interval;
}

Fields config_changes(const Config& before, const Config& after) {
    const Fields old_fields = config_fields(before);
    const Fields new_fields = config_fields(after);
    Fields changed_values;
    std::string changed;
    for (std::size_t i = 0; i < new_fields.size(); ++i) {
        if (old_fields[i].second != new_fields[i].second) {
            changed += changed.empty() ? "" : ",";
            changed += new_fields[i].first;
            changed_values.push_back(new_fields[i]);
        }
    }
    Fields out;
    out.emplace_back("changed", changed.empty() ? "none" : changed);
    out.insert(out.end(), changed_values.begin(), changed_values.end());
    return out;
}

TmuxServer tmux_server_of(const Config& config) {
    return TmuxServer{config.tmux_socket, config.tmux_socket_path};
}

std::string describe_tmux_server(const Config& config) {
    if (!config.tmux_socket_path.empty()) {
        return "-S " + config.tmux_socket_path;
    }
    if (!config.tmux_socket.empty()) {
        return "-L " + config.tmux_socket;
    }
    return "default";
}

ServerRef tmux_server_of_root(const Config& config, const std::string& root) {
    const auto own = config.root_tmux.find(root);
    if (own == config.root_tmux.end()) {
        return ServerRef{tmux_server_of(config), {}};
    }
    const RootTmux& t = own->second;
    if (!t.gastown) {
        return ServerRef{TmuxServer{t.tmux_socket, t.tmux_socket_path}, {}};
    }
    auto name = gastown_socket_name(root);
    if (!name) {
        return ServerRef{{}, "gastown socket name: " + name.error().message};
    }
    return ServerRef{TmuxServer{*name, ""}, {}};
}

std::optional<std::string> root_of_path(const Config& config, const std::string& path) {
    if (const std::string* root = root_containing(config.roots, path)) {
        return *root;
    }
    return std::nullopt;
}

PassOptions pass_options_of(const Config& config) {
    PassOptions options;
    options.roots = config.roots;
    for (const auto& root : config.roots) {
        options.root_servers.push_back(tmux_server_of_root(config, root));
    }
    options.walk.prune = config.prune;
    options.walk.max_depth = config.max_depth;
    options.walk.one_file_system = config.one_file_system;
    // The parallel walk (same results as the serial one): 1.5-2x faster full passes on big
    // fleets (bench/RESULTS.md).
    options.walk.threads = 0;
    options.dry_run = config.dry_run;
    options.tmux_created_slack = config.tmux_created_slack;
    // A lock that records its agent's tmux server is judged by that server, asked by its path.
    options.ask_tmux_server = [timeout = config.tmux_timeout](const TmuxServer& server) {
        return SystemTmuxProbe(server, timeout).query();
    };
    return options;
}

} // namespace agentlock
