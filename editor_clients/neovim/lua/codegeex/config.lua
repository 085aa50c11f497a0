--- Options with their defaults, and their validation.
---
--- `setup()` merges the user's table over `defaults`; a value of the wrong type (or an unknown
--- key) is reported once with vim.notify and replaced by its default, never an error.
local M = {}

---@class codegeex.Keymaps
---@field accept string|false
---@field accept_word string|false
---@field accept_line string|false
---@field next string|false
---@field prev string|false
---@field dismiss string|false
---@field trigger string|false

---@class codegeex.Config
M.defaults = {
  --- Suggest at all (`:CodeGeeX toggle` flips it).
  enabled = true,
  --- true: suggest as you type; false: only on the `trigger` key.
  auto_trigger = true,
  --- Wait this long after the last keystroke before asking the server (ms).
  debounce_ms = 75,
  --- filetype -> enabled; "*" is the default for filetypes not listed.
  filetypes = { ["*"] = true, help = false, gitcommit = false, gitrebase = false, markdown = false },
  server = {
    --- The executable (string) or a whole command (list); nil: the project's .venv, $VIRTUAL_ENV, PATH.
    cmd = nil,
    --- Extra arguments after `codegeex-lsp serve`, e.g. { "--threads", "4" }.
    args = {},
    --- Files that mark a project root (the server's workspace folder).
    root_markers = { ".git", "pyproject.toml", "package.json", "go.mod", "Cargo.toml" },
  },
  --- The model: the embedded "qwen2.5-coder-0.5b", a .gguf file or a Hugging Face directory
  --- (nil: the server's default or `--model` in server.args).
  model = nil,
  --- Prompt format (nil: detected from the tokenizer), see `codegeex-lsp formats`.
  format = nil,
  --- Weights: "int4" (default; built once on first use, bf16 answers meanwhile) or "none" (float).
  quant = "int4",
  --- Most tokens per suggestion (nil: the server's 48 for a line, 192 for a block).
  max_tokens = nil,
  --- Raw server options (camelCase wire form, see the server's options), merged last.
  server_options = {},
  --- Insert-mode keys; false turns one off.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<C-Right>",
    accept_line = "<S-Tab>",
    next = "<M-]>",
    prev = "<M-[>",
    dismiss = "<C-]>",
    trigger = "<M-\\>",
  },
  --- Highlight group of the ghost text (linked to Comment unless you define it).
  hl_group = "CodeGeeXSuggestion",
}

---@type codegeex.Config
M.options = vim.deepcopy(M.defaults)

--- Expected types of leaves whose default is nil (or a list).
local NILABLE = {
  model = "string",
  format = "string",
  max_tokens = "number",
  ["server.cmd"] = { "string", "table" },
}

local function type_ok(value, expected)
  if type(expected) == "table" then
    return vim.tbl_contains(expected, type(value))
  end
  return type(value) == expected
end

--- Merge `user` over `default` at `path`, collecting warnings for bad values.
local function merge(default, user, path, warnings)
  local out = vim.deepcopy(default)
  for key, value in pairs(user) do
    local where = path == "" and tostring(key) or (path .. "." .. tostring(key))
    local base = default[key]
    local free_keys = path == "filetypes" or path == "server_options"
    if free_keys then
      if path == "filetypes" and type(value) ~= "boolean" then
        table.insert(warnings, ("%s: expected true or false, got %s"):format(where, vim.inspect(value)))
      else
        out[key] = value
      end
    elseif NILABLE[where] ~= nil then
      if value == nil or type_ok(value, NILABLE[where]) then
        out[key] = value
      else
        table.insert(warnings, ("%s: expected %s, got %s"):format(where, vim.inspect(NILABLE[where]), vim.inspect(value)))
      end
    elseif base == nil then
      table.insert(warnings, ("%s: unknown option (ignored)"):format(where))
    elseif type(base) == "table" and not vim.islist(base) then
      if type(value) == "table" then
        out[key] = merge(base, value, where, warnings)
      else
        table.insert(warnings, ("%s: expected a table, got %s"):format(where, vim.inspect(value)))
      end
    elseif path == "keymaps" then
      if value == false or type(value) == "string" then
        out[key] = value
      else
        table.insert(warnings, ("%s: expected a key (string) or false, got %s"):format(where, vim.inspect(value)))
      end
    elseif type(value) == type(base) then
      out[key] = value
    else
      table.insert(warnings, ("%s: expected a %s, got %s"):format(where, type(base), vim.inspect(value)))
    end
  end
  return out
end

--- Validate `user` over the defaults; returns the options and the warnings (also kept for :checkhealth).
---@param user table|nil
---@return codegeex.Config, string[]
function M.resolve(user)
  local warnings = {}
  if user ~= nil and type(user) ~= "table" then
    return vim.deepcopy(M.defaults), { "setup() expects a table, got " .. vim.inspect(user) }
  end
  local options = merge(M.defaults, user or {}, "", warnings)
  if options.debounce_ms < 0 then
    table.insert(warnings, "debounce_ms: must not be negative (using " .. M.defaults.debounce_ms .. ")")
    options.debounce_ms = M.defaults.debounce_ms
  end
  if options.max_tokens ~= nil and (options.max_tokens < 1 or options.max_tokens > 4096) then
    table.insert(warnings, "max_tokens: must be in [1, 4096] (using the server's default)")
    options.max_tokens = nil
  end
  return options, warnings
end

M.warnings = {}

---@param user table|nil
function M.setup(user)
  local options, warnings = M.resolve(user)
  M.options, M.warnings = options, warnings
  if #warnings > 0 then
    vim.notify("codegeex: invalid options ignored:\n  " .. table.concat(warnings, "\n  "), vim.log.levels.WARN)
  end
  return options
end

--- Whether buffers of `filetype` get suggestions.
function M.filetype_enabled(filetype)
  local ft = M.options.filetypes
  local own = ft[filetype]
  if own ~= nil then
    return own
  end
  return ft["*"] ~= false
end

--- The server's initializationOptions: model, limits, and no server-side debounce (this client
--- debounces and cancels itself), then `server_options` over them.
function M.server_options()
  local o = M.options
  local wire = {
    debounce = { minMs = 0, maxMs = 0, initialMs = 0 },
    completion = { maxTokens = o.max_tokens or vim.NIL },
  }
  wire.model = { name = o.model, format = o.format, quant = o.quant }
  return vim.tbl_deep_extend("force", wire, o.server_options or {})
end

return M
