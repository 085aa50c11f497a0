--- :checkhealth codegeex
local M = {}

function M.check()
  local health = vim.health
  health.start("codegeex: Neovim")
  if vim.fn.has("nvim-0.10") == 1 then
    local v = vim.version()
    health.ok(("Neovim %d.%d.%d (inline virtual text available)"):format(v.major, v.minor, v.patch))
  else
    health.error("Neovim 0.10 or later is needed (inline virtual text)")
  end

  health.start("codegeex: configuration")
  local plugin = require("codegeex")
  local config = require("codegeex.config")
  if not plugin.did_setup then
    health.warn('setup() was not called', { 'add require("codegeex").setup({}) to your config' })
  else
    health.ok("setup() called; suggestions " .. (config.options.enabled and "on" or "off"))
  end
  if #config.warnings == 0 then
    health.ok("options valid")
  else
    for _, warning in ipairs(config.warnings) do
      health.warn("option ignored: " .. warning)
    end
  end

  health.start("codegeex: server")
  local server = require("codegeex.server")
  local cmd, source = server.resolve_cmd(server.root_dir(vim.api.nvim_get_current_buf()))
  if not cmd then
    health.error(source, { "pip install codegeex-lsp, or set server.cmd in setup()" })
  else
    health.ok(("command: %s (from %s)"):format(table.concat(cmd, " "), source))
    local ok, result = pcall(function()
      return vim.system({ cmd[1], "--version" }, { text = true }):wait(15000)
    end)
    if ok and result.code == 0 then
      health.ok("`" .. cmd[1] .. " --version`: " .. vim.trim(result.stdout or ""))
    else
      local why = ok and (vim.trim(result.stderr or "") ~= "" and vim.trim(result.stderr) or ("exit " .. tostring(result.code)))
        or tostring(result)
      health.error("`" .. cmd[1] .. " --version` failed: " .. why)
    end
  end

  local client = server.get_client()
  if not client then
    health.info("not running (it starts with the first buffer of an enabled filetype)")
    return
  end
  health.ok(("running: client id %d, position encoding %s"):format(client.id, client.offset_encoding))
  local reply = server.call(client, "request_sync", server.STATUS, vim.NIL, 5000)
  local status = reply and reply.result
  if type(status) ~= "table" then
    health.warn("no answer to codegeex/status: " .. vim.inspect(reply and reply.err))
  elseif status.state == "ready" then
    health.ok(("model %s ready (format %s, loaded in %ss)"):format(status.model, status.format, status.loadSeconds))
  elseif status.state == "error" then
    health.error("model: " .. tostring(status.error))
  else
    health.info("model " .. tostring(status.model) .. ": " .. tostring(status.state))
  end
end

return M
