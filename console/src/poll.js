// Data that stays fresh: loads at once, again every `every` ms while the page shows, and again
// after `refresh()`; a failed load keeps the last answer and shows the error.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { followEvents } from "./api.js";

export function usePolled(load, every, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(async () => {
    const mine = ++generation.current;
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((last) => ({ data: last.data, error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    setState({ data: null, error: null, loading: true });
    run();
    if (!every) return () => ++generation.current;
    const timer = setInterval(() => {
      if (document.visibilityState !== "hidden") run();
    }, every);
    return () => {
      clearInterval(timer);
      ++generation.current;
    };
  }, [run, every]);
  return { ...state, refresh: run };
}

// Calls `onEvents` with the tenant's state changes while the page shows (GET /v1/events).
export function useEvents(onEvents, deps = []) {
  const handler = useRef(onEvents);
  handler.current = onEvents;
  useEffect(() => {
    const abort = new AbortController();
    followEvents(abort.signal, (events) => handler.current(events));
    return () => abort.abort();
  }, deps);
}
