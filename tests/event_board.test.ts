/**
 * `EventBoard` without sockets: events gathered between two waits, one waiter, timeouts, aborts,
 * and events of clients the application never heard of.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventBoard } from "../core/engine/event_board.ts";

describe("EventBoard", () => {
  it("hands over pending events at once, each id once per kind, and starts afresh", async () => {
    const board = new EventBoard(() => true);
    const events = board.events;
    board.emit(events.newlyConnectedExpectedClients, 1);
    board.emit(events.newlyConnectedExpectedClients, 1);
    board.emit(events.clientsHaveDataToRead, 1);
    const result = await board.wait(10_000);
    assert.deepEqual([...result.newlyConnectedExpectedClients], [1]);
    assert.deepEqual([...result.clientsHaveDataToRead], [1]);
    assert.equal(board.take().newlyConnectedExpectedClients.size, 0, "taken events are gone");
  });

  it("wakes a waiter once for events emitted in one turn", async () => {
    const board = new EventBoard(() => true);
    const waiting = board.wait(Infinity);
    assert.ok(board.waiting);
    board.emit(board.events.clientsWithDisconnectedConnection, 3);
    board.emit(board.events.clientsWithDisconnectedConnection, 4);
    const result = await waiting;
    assert.deepEqual([...result.clientsWithDisconnectedConnection], [3, 4]);
    assert.ok(!board.waiting);
  });

  it("resolves empty after the timeout, and refuses a second waiter", async () => {
    const board = new EventBoard(() => true);
    const waiting = board.wait(10);
    assert.throws(() => board.wait(10), TypeError);
    const result = await waiting;
    assert.equal(Object.values(result).reduce((n, set: Set<number>) => n + set.size, 0), 0);
  });

  it("rejects with the signal's reason when aborted, and takes a waiter again afterwards", async () => {
    const board = new EventBoard(() => true);
    const controller = new AbortController();
    const waiting = board.wait(Infinity, controller.signal);
    controller.abort(new Error("stop"));
    await assert.rejects(waiting, /stop/);
    assert.ok(!board.waiting);
    board.emit(board.events.clientsWithEmptyOutputFifo, 9);
    assert.deepEqual([...(await board.wait(0)).clientsWithEmptyOutputFifo], [9]);
  });

  it("drops clientsHaveDataToRead for a client whose data was read meanwhile", () => {
    const unread = new Map([[1, true], [2, false]]);
    const board = new EventBoard((id) => unread.get(id) ?? false);
    board.emit(board.events.clientsHaveDataToRead, 1);
    board.emit(board.events.clientsHaveDataToRead, 2);
    assert.deepEqual([...board.take().clientsHaveDataToRead], [1]);
  });

  it("forgets every event of an unknown client nobody was told about", async () => {
    const board = new EventBoard(() => true);
    board.emit(board.events.newlyConnectedUnknownClients, 5);
    board.emit(board.events.clientsHaveDataToRead, 5);
    board.emit(board.events.newlyConnectedExpectedClients, 6);
    board.forgetUnseen(5);
    board.forgetUnseen(6); // announced as expected: kept
    const result = await board.wait(10_000);
    assert.equal(result.newlyConnectedUnknownClients.size, 0);
    assert.equal(result.clientsHaveDataToRead.size, 0);
    assert.deepEqual([...result.newlyConnectedExpectedClients], [6]);
  });
});
