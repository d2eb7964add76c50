#include <agentlock/config.hpp>
#include <agentlock/duration.hpp>

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

private:
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
            ok = reader.read_string_list(key, v, config.roots);
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
                                  "full_pass_interval, metrics_file, fleet)");
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
        if (std::find(roots.begin(), roots.end(), absolute) == roots.end()) {
            roots.push_back(std::move(absolute));
        }
    }
    config.roots = std::move(roots);
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

Fields config_fields(const Config& c) {
    return {
        {"roots", join_list(c.roots)},
        {"interval", format_duration(c.interval)},
        {"tmux_socket", c.tmux_socket},
        {"tmux_socket_path", c.tmux_socket_path},
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

PassOptions pass_options_of(const Config& config) {
    PassOptions options;
    options.roots = config.roots;
    options.walk.prune = config.prune;
    options.walk.max_depth = config.max_depth;
    options.walk.one_file_system = config.one_file_system;
    // The parallel walk (same results as the serial one): 1.5-2x faster full passes on big
    // fleets (bench/RESULTS.md).
    options.walk.threads = 0;
    options.dry_run = config.dry_run;
    return options;
}

} // namespace agentlock
