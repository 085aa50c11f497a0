// A typed event bus: listeners per event name, once-listeners, and async emit with error isolation.

type Listener<T> = (payload: T) => void | Promise<void>;

interface Subscription {
  unsubscribe(): void;
}

export class EventBus<Events extends Record<string, unknown>> {
  private listeners = new Map<keyof Events, Set<Listener<any>>>();
  private errors: Error[] = [];

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): Subscription {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return { unsubscribe: () => this.off(event, listener) };
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): Subscription {
    const wrapper: Listener<Events[K]> = (payload) => {
      this.off(event, wrapper);
      return listener(payload);
    };
    return this.on(event, wrapper);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const set = this.listeners.get(event);
    if (!set) {
      return;
    }
    set.delete(listener);
    if (set.size === 0) {
      this.listeners.delete(event);
    }
  }

  async emit<K extends keyof Events>(event: K, payload: Events[K]): Promise<number> {
    const set = this.listeners.get(event);
    if (!set) {
      return 0;
    }
    let delivered = 0;
    for (const listener of [...set]) {
      try {
        await listener(payload);
        delivered += 1;
      } catch (error) {
        this.errors.push(error instanceof Error ? error : new Error(String(error)));
      }
    }
    return delivered;
  }

  listenerCount<K extends keyof Events>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  drainErrors(): Error[] {
    const errors = this.errors;
    this.errors = [];
    return errors;
  }
}

interface AppEvents {
  saved: { path: string; bytes: number };
  closed: { path: string };
  [key: string]: unknown;
}

export function createAppBus(): EventBus<AppEvents> {
  const bus = new EventBus<AppEvents>();
  bus.on("saved", ({ path, bytes }) => {
    console.log(`saved ${path} (${bytes} bytes)`);
  });
  return bus;
}
