--- CodeGeeX for Neovim: local code completion from `codegeex-lsp` as ghost text.
---
---   require("codegeex").setup({ ... })   -- see :help codegeex-options
---
--- setup() wires autocommands and keys; the server starts when the first enabled buffer opens.
local config = require("codegeex.config")

local M = {}

M.did_setup = false

local function eligible(bufnr)
  return vim.api.nvim_buf_is_valid(bufnr)
    and vim.bo[bufnr].buftype == ""
    and vim.api.nvim_buf_get_name(bufnr) ~= ""
    and config.filetype_enabled(vim.bo[bufnr].filetype)
end

local function maybe_attach(bufnr)
  if config.options.enabled and eligible(bufnr) then
    require("codegeex.server").attach(bufnr)
  end
end

local function attach_all()
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) then
      maybe_attach(bufnr)
    end
  end
end

local function autocmds()
  local suggestion = require("codegeex.suggestion")
  local group = vim.api.nvim_create_augroup("codegeex", { clear = true })
  local function on(events, callback)
    vim.api.nvim_create_autocmd(events, { group = group, callback = callback })
  end
  on("FileType", function(args)
    maybe_attach(args.buf)
  end)
  on("LspProgress", function(args)
    require("codegeex.status").on_progress(args)
  end)
  local function ours(bufnr)
    return config.options.enabled
      and config.filetype_enabled(vim.bo[bufnr].filetype)
      and require("codegeex.server").get_client(bufnr) ~= nil
  end
  on("InsertEnter", function(args)
    if ours(args.buf) then
      suggestion.schedule(args.buf)
    end
  end)
  on("TextChangedI", function(args)
    if ours(args.buf) then
      suggestion.on_text_changed(args.buf)
    end
  end)
  on("CursorMovedI", function(args)
    suggestion.on_cursor_moved(args.buf)
  end)
  on({ "InsertLeave", "BufLeave" }, function(args)
    if suggestion.visible(args.buf) then
      suggestion.dismiss(args.buf)
    end
  end)
  on("BufWipeout", function(args)
    suggestion.detach(args.buf)
  end)
  on("ColorScheme", function()
    vim.api.nvim_set_hl(0, "CodeGeeXSuggestion", { link = "Comment", default = true })
  end)
end

--- Configure (again): options, highlight, autocommands, keys; attach open buffers.
---@param opts table|nil see :help codegeex-options
function M.setup(opts)
  if vim.fn.has("nvim-0.10") == 0 then
    vim.notify("codegeex: needs Neovim 0.10 or later (inline virtual text)", vim.log.levels.ERROR)
    return
  end
  local again = M.did_setup
  config.setup(opts)
  vim.api.nvim_set_hl(0, "CodeGeeXSuggestion", { link = "Comment", default = true })
  autocmds()
  require("codegeex.keymaps").setup()
  M.did_setup = true
  if again then
    require("codegeex.server").push_options()
  end
  attach_all()
end

local function ensure_setup()
  if not M.did_setup then
    M.setup({})
  end
end

function M.enable()
  ensure_setup()
  config.options.enabled = true
  attach_all()
  vim.api.nvim_exec_autocmds("User", { pattern = "CodeGeeXStatus", modeline = false })
end

function M.disable()
  ensure_setup()
  config.options.enabled = false
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if require("codegeex.suggestion").visible(bufnr) then
      require("codegeex.suggestion").dismiss(bufnr)
    end
  end
  vim.api.nvim_exec_autocmds("User", { pattern = "CodeGeeXStatus", modeline = false })
end

function M.toggle()
  if config.options.enabled and M.did_setup then
    M.disable()
  else
    M.enable()
  end
  vim.notify("codegeex: suggestions " .. (config.options.enabled and "on" or "off"))
end

function M.is_enabled()
  return M.did_setup and config.options.enabled
end

--- Stop the server and start a fresh one for the open buffers.
function M.restart()
  ensure_setup()
  local server = require("codegeex.server")
  server.stop()
  local deadline = vim.uv.now() + 10000
  local function again()
    if server.get_client() ~= nil and vim.uv.now() < deadline then
      vim.defer_fn(again, 100)
      return
    end
    attach_all()
  end
  vim.defer_fn(again, 100)
end

--- Print the state (and the server's counters, once it answers).
function M.status()
  ensure_setup()
  local status = require("codegeex.status")
  status.refresh(function()
    vim.notify(table.concat(status.describe(), "\n"))
  end)
  if not require("codegeex.server").get_client() then
    vim.notify(table.concat(status.describe(), "\n"))
  end
end

--- The server's recent log messages in a scratch buffer.
function M.show_log()
  local lines = require("codegeex.server").log_lines
  vim.cmd("botright new")
  local bufnr = vim.api.nvim_get_current_buf()
  vim.bo[bufnr].buftype = "nofile"
  vim.bo[bufnr].bufhidden = "wipe"
  vim.bo[bufnr].swapfile = false
  vim.api.nvim_buf_set_name(bufnr, "codegeex://log")
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, #lines > 0 and lines or { "(no messages from the server yet)" })
  vim.bo[bufnr].modifiable = false
end

return M
