/**
 * VS Code wiring: starts `codegeex-lsp serve` over stdio with vscode-languageclient (whose
 * standard inline-completion feature drives ghost text), and adds what the server cannot know:
 * per-language enablement, manual trigger mode, the status bar item, commands, and acceptance /
 * dismissal reports. Decisions live in the pure modules beside this one.
 */

import * as fs from "fs";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  State,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from "vscode-languageclient/node";

import { resolveServerCommand, type Probe } from "./serverCommand";
import { type ClientSettings, languageEnabled, planChange, readSettings, SECTION, toServerOptions } from "./settings";
import { INITIAL, reduce, type StatusEvent, type StatusState, view } from "./statusView";
import { SuggestionTracker } from "./tracker";

const STATUS_METHOD = "codegeex/status";
const POLL_MS = 1000;

interface ServerStatus {
  state: string;
  model?: string | null;
  format?: string | null;
  error?: string | null;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function loadSettings(log: vscode.LogOutputChannel): ClientSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const { settings, warnings } = readSettings((key) => config.get(key));
  for (const warning of warnings) {
    log.warn(warning);
  }
  if (warnings.length > 0) {
    void vscode.window.showWarningMessage(`CodeGeeX: invalid settings ignored: ${warnings.join("; ")}`);
  }
  return settings;
}

class CodegeexExtension implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private settings: ClientSettings;
  private state: StatusState = INITIAL;
  private readonly item: vscode.StatusBarItem;
  private readonly tracker: SuggestionTracker;
  private poll: NodeJS.Timeout | undefined;
  private activeUri: string | undefined;
  private restarting: Promise<void> = Promise.resolve();

  constructor(private readonly log: vscode.LogOutputChannel) {
    this.settings = loadSettings(log);
    this.item = vscode.window.createStatusBarItem("codegeex.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "CodeGeeX";
    this.item.command = "codegeex.toggle";
    this.tracker = new SuggestionTracker((method, params) => {
      this.log.info(`${method} ${params.uri}`);
      void this.client?.sendNotification(method, params);
    });
    this.update({ kind: "enabled", enabled: this.settings.enable });
    this.item.show();
  }

  // -- status -------------------------------------------------------------------------------

  private update(event: StatusEvent): void {
    this.state = reduce(this.state, event);
    const shown = view(this.state);
    this.item.text = shown.text;
    this.item.tooltip = shown.tooltip;
    this.item.backgroundColor = shown.background ? new vscode.ThemeColor(shown.background) : undefined;
    this.item.accessibilityInformation = { label: shown.label };
    const waiting = this.state.phase === "starting" || this.state.phase === "loading";
    if (waiting && this.poll === undefined) {
      this.poll = setInterval(() => void this.refreshStatus(), POLL_MS);
    } else if (!waiting && this.poll !== undefined) {
      clearInterval(this.poll);
      this.poll = undefined;
    }
  }

  private async refreshStatus(): Promise<void> {
    const client = this.client;
    if (client === undefined || client.state !== State.Running) {
      return;
    }
    try {
      // No params at all: vscode-jsonrpc sends a lone `null` argument as `[null]`, which the
      // server rightly rejects (-32602) for a method whose params are an object or absent.
      const status = await client.sendRequest<ServerStatus>(STATUS_METHOD);
      if (client === this.client) {
        this.update({ kind: "status", ...status });
      }
    } catch (error) {
      this.log.debug(`${STATUS_METHOD} failed: ${String(error)}`);
    }
  }

  private updateLanguage(editor: vscode.TextEditor | undefined): void {
    if (editor !== undefined) {
      this.update({ kind: "language", enabled: languageEnabled(this.settings, editor.document.languageId) });
    }
  }

  // -- the client -----------------------------------------------------------------------------

  private probe(): Probe {
    // A workspace's own .venv is code from that workspace: only run it when the user trusts it.
    const folders = vscode.workspace.isTrusted ? (vscode.workspace.workspaceFolders ?? []) : [];
    return {
      folders: folders.map((f) => f.uri.fsPath),
      env: process.env,
      platform: process.platform,
      isExecutable,
    };
  }

  private clientOptions(): LanguageClientOptions {
    return {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.log,
      initializationOptions: toServerOptions(this.settings),
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!languageEnabled(this.settings, document.languageId)) {
            return null;
          }
          if (
            this.settings.trigger === "manual" &&
            context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic
          ) {
            return null;
          }
          const uri = document.uri.toString();
          const linePrefix = document.lineAt(position.line).text.slice(0, position.character);
          this.tracker.requested(uri, position.line, linePrefix);
          const result = await next(document, position, context, token);
          const items = Array.isArray(result) ? result : (result?.items ?? []);
          for (const item of items) {
            item.command = { command: "codegeex.accepted", title: "Accepted", arguments: [uri] };
          }
          const first = items[0]?.insertText;
          if (first !== undefined && !token.isCancellationRequested) {
            const text = typeof first === "string" ? first : first.value;
            this.tracker.shown({ uri, line: position.line, linePrefix, text });
          }
          return result;
        },
        workspace: {
          // The server pulls its section when a didChangeConfiguration carries no settings.
          configuration: (params) =>
            params.items.map((item) => (item.section === SECTION ? toServerOptions(this.settings) : null)),
        },
      },
    };
  }

  /** Progress of model loads goes to the status bar item (instead of a notification). */
  private watchProgress(client: LanguageClient): void {
    client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
      const disposable = client.onProgress(WorkDoneProgress.type, token, (value) => {
        if (value.kind === "end") {
          this.update({ kind: "progress", message: value.message, done: true });
          disposable.dispose();
          void this.refreshStatus();
        } else {
          const message = value.kind === "begin" ? (value.message ?? value.title) : value.message;
          this.update({ kind: "progress", message, percentage: value.percentage });
        }
      });
    });
  }

  async start(): Promise<void> {
    this.update({ kind: "starting" });
    const resolved = resolveServerCommand(this.settings.server.path, this.settings.server.args, this.probe());
    if ("error" in resolved) {
      this.log.error(resolved.error);
      this.update({ kind: "failed", error: resolved.error });
      void vscode.window.showErrorMessage(`CodeGeeX: ${resolved.error}`, "Open Settings").then((choice) => {
        if (choice === "Open Settings") {
          void vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.server`);
        }
      });
      return;
    }
    this.log.info(`starting ${resolved.command} ${resolved.args.join(" ")} (found via ${resolved.source})`);
    const client = new LanguageClient(
      SECTION, // the client id: `codegeexLsp.trace.server` sets its trace level
      "CodeGeeX",
      { command: resolved.command, args: resolved.args, options: { env: process.env } },
      this.clientOptions(),
    );
    this.client = client;
    client.onDidChangeState(({ newState }) => {
      if (client === this.client && newState === State.Stopped) {
        this.update({ kind: "stopped" });
      }
    });
    try {
      await client.start();
    } catch (error) {
      if (client === this.client) {
        this.update({ kind: "failed", error: `the server did not start: ${String(error)}` });
      }
      return;
    }
    this.watchProgress(client);
    await this.refreshStatus();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.tracker.reset();
    if (client !== undefined) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.log.warn(`stopping the server: ${String(error)}`);
      }
      await client.dispose();
    }
  }

  restart(): Promise<void> {
    this.restarting = this.restarting.then(async () => {
      await this.stop();
      await this.start();
    });
    return this.restarting;
  }

  // -- events -------------------------------------------------------------------------------

  onConfigurationChanged(): void {
    const before = this.settings;
    this.settings = loadSettings(this.log);
    this.update({ kind: "enabled", enabled: this.settings.enable });
    this.updateLanguage(vscode.window.activeTextEditor);
    const plan = planChange(before, this.settings);
    if (plan === "restart") {
      void this.restart();
    } else if (plan === "notify" && this.client?.state === State.Running) {
      void this.client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: toServerOptions(this.settings) },
      });
    }
  }

  onActiveEditorChanged(editor: vscode.TextEditor | undefined): void {
    const uri = editor?.document.uri.toString();
    if (this.activeUri !== undefined && this.activeUri !== uri) {
      this.tracker.dismissed(this.activeUri);
    }
    this.activeUri = uri;
    this.updateLanguage(editor);
  }

  // -- commands -------------------------------------------------------------------------------

  private activeDocumentUri(): string | undefined {
    return vscode.window.activeTextEditor?.document.uri.toString();
  }

  async toggle(): Promise<void> {
    const config = vscode.workspace.getConfiguration(SECTION);
    await config.update("enable", !this.settings.enable, vscode.ConfigurationTarget.Global);
  }

  async acceptPart(command: string): Promise<void> {
    await vscode.commands.executeCommand(command);
    const uri = this.activeDocumentUri();
    if (uri !== undefined) {
      this.tracker.partlyAccepted(uri);
    }
  }

  async dismiss(): Promise<void> {
    await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
    const uri = this.activeDocumentUri();
    if (uri !== undefined) {
      this.tracker.dismissed(uri);
    }
  }

  accepted(uri: string): void {
    this.tracker.accepted(uri);
  }

  documentClosed(uri: string): void {
    this.tracker.dismissed(uri);
  }

  showLog(): void {
    this.log.show(true);
  }

  dispose(): void {
    if (this.poll !== undefined) {
      clearInterval(this.poll);
    }
    this.item.dispose();
  }
}

let extension: CodegeexExtension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel("CodeGeeX", { log: true });
  const ext = new CodegeexExtension(log);
  extension = ext;
  const command = (id: string, run: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, run));
  command("codegeex.trigger", () => vscode.commands.executeCommand("editor.action.inlineSuggest.trigger"));
  command("codegeex.toggle", () => ext.toggle());
  command("codegeex.showLog", () => ext.showLog());
  command("codegeex.restart", () => ext.restart());
  command("codegeex.acceptWord", () => ext.acceptPart("editor.action.inlineSuggest.acceptNextWord"));
  command("codegeex.acceptLine", () => ext.acceptPart("editor.action.inlineSuggest.acceptNextLine"));
  command("codegeex.next", () => vscode.commands.executeCommand("editor.action.inlineSuggest.showNext"));
  command("codegeex.previous", () => vscode.commands.executeCommand("editor.action.inlineSuggest.showPrevious"));
  command("codegeex.dismiss", () => ext.dismiss());
  command("codegeex.accepted", (uri: string) => ext.accepted(uri));
  context.subscriptions.push(
    ext,
    log,
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(SECTION)) {
        ext.onConfigurationChanged();
      }
    }),
    vscode.window.onDidChangeActiveTextEditor((editor) => ext.onActiveEditorChanged(editor)),
    vscode.workspace.onDidCloseTextDocument((doc) => ext.documentClosed(doc.uri.toString())),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void ext.restart()),
  );
  ext.onActiveEditorChanged(vscode.window.activeTextEditor);
  await ext.start();
}

export async function deactivate(): Promise<void> {
  await extension?.stop();
  extension = undefined;
}
