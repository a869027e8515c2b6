#pragma once
// Internal: the JSON writing shared by the trace and the interactive page
// (both write JSON by hand, to keep a JSON library out of the public API).
#include <string>
#include <string_view>

namespace tapegrad::tools::detail {

// Appends `text` as a JSON string literal: quotes, backslashes and control
// characters escaped; UTF-8 passes through (formulas hold σ, ², Σ, ...).
void json_string(std::string& out, std::string_view text);

}  // namespace tapegrad::tools::detail
