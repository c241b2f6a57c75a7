// Every kind of answer the server gives, through OpenRouter's official TypeScript SDK, which validates each answer
// against its own schemas (a null where OpenRouter omits a field, or a missing field, fails the call).
// Input on stdin: {"mode", "url", "model", ...}; mode "answers" (the default; with "image") calls the server,
// "errors" (with "keys": {ok, off, lean}) makes calls that fail with each status, "chunks" (with "chunks": [JSON])
// parses stream chunks with the SDK's own schema. Output on stdout: {check: {ok, value} | {ok: false, error}}.
import { OpenRouter } from "@openrouter/sdk";
import { ChatStreamChunk$inboundSchema } from "@openrouter/sdk/models";

const input = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (piece) => (text += piece));
  process.stdin.on("end", () => done(text));
}));
const sdk = new OpenRouter({ apiKey: "sk-or-v1-local", serverURL: `${input.url}/api/v1`, retryConfig: { strategy: "none" } });
const model = input.model;
const hi = [{ role: "user", content: "hi" }];
const tool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather forecast for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Rome", "Paris"] }, days: { type: "integer", minimum: 1, maximum: 7 } },
      required: ["city", "days"],
      additionalProperties: false,
    },
  },
};
const force = { type: "function", function: { name: "get_weather" } };

const answers = {
  async chat() {
    const content = [{ type: "text", text: "What?" }, { type: "image_url", imageUrl: { url: input.image } }];
    const r = await sdk.chat.send({ chatRequest: { model, messages: [{ role: "user", content }], maxTokens: 3, logprobs: true } });
    return { id: r.id, completionTokens: r.usage.completionTokens, text: r.choices[0].message.content };
  },
  async chatStream() {
    const stream = await sdk.chat.send({ chatRequest: { model, messages: hi, maxTokens: 4, stream: true } });
    let text = "";
    let usage = null;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) text += choice.delta.content ?? "";
      usage = chunk.usage ?? usage;
    }
    return { text, completionTokens: usage.completionTokens };
  },
  async tools() {
    const r = await sdk.chat.send({ chatRequest: { model, messages: hi, tools: [tool], toolChoice: force, maxTokens: 64 } });
    const stream = await sdk.chat.send({
      chatRequest: { model, messages: hi, tools: [tool], toolChoice: force, maxTokens: 64, stream: true },
    });
    let streamed = "";
    for await (const chunk of stream) {
      for (const choice of chunk.choices) for (const call of choice.delta.toolCalls ?? []) streamed += call.function?.arguments ?? "";
    }
    return { sent: Object.keys(JSON.parse(r.choices[0].message.toolCalls[0].function.arguments)).sort(), streamed: Object.keys(JSON.parse(streamed)).sort() };
  },
  async models() {
    const page = await sdk.models.list({ offset: 0, limit: 10 });
    const count = await sdk.models.count();
    const endpoints = await sdk.endpoints.list({ author: "mistralai", slug: "mistral-small-3.1-24b-instruct" });
    return { ids: (page.result ?? page).data.map((m) => m.id), count: count.data.count, endpoints: endpoints.data.endpoints.length };
  },
  async account() {
    const r = await sdk.chat.send({ chatRequest: { model, messages: hi, maxTokens: 2 } });
    const generation = await sdk.generations.getGeneration({ id: r.id });
    const key = await sdk.apiKeys.getCurrentKeyMetadata();
    const credits = await sdk.credits.getCredits();
    const activity = await sdk.analytics.getUserActivity();
    return {
      generationTokens: generation.data.tokensCompletion,
      keyLabel: key.data.label,
      totalUsage: credits.data.totalUsage,
      activityRows: activity.data.length,
    };
  },
  async responses() {
    const r = await sdk.responses.send({ responsesRequest: { model, input: "hi", maxOutputTokens: 3 } });
    return { status: r.status, outputTokens: r.usage.outputTokens };
  },
  async error400() {
    try {
      await sdk.chat.send({ chatRequest: { model: "acme/nope", messages: hi } });
      return { raised: null };
    } catch (error) {
      return { raised: error.constructor.name, status: error.statusCode, message: error.message };
    }
  },
};

async function failure(call) {
  try {
    await call();
    return { raised: null };
  } catch (error) {
    return { raised: error.constructor.name, status: error.statusCode };
  }
}

const as = (key) => new OpenRouter({ apiKey: key, serverURL: `${input.url}/api/v1`, retryConfig: { strategy: "none" } });
const errors = input.keys && {
  e400: () => failure(() => as(input.keys.ok).chat.send({ chatRequest: { model: "acme/nope", messages: hi } })),
  e401: () => failure(() => as("sk-wrong").chat.send({ chatRequest: { model, messages: hi } })),
  e402: () => failure(() => as(input.keys.lean).chat.send({ chatRequest: { model, messages: hi, maxTokens: 100 } })),
  e403: () => failure(() => as(input.keys.off).chat.send({ chatRequest: { model, messages: hi } })),
  e404: () => failure(() => as(input.keys.ok).generations.getGeneration({ id: "gen-0-none" })),
  e413: () => failure(() =>
    as(input.keys.ok).chat.send({ chatRequest: { model, messages: [{ role: "user", content: "x".repeat(8000) }] } })),
  e503: () => failure(() => as(input.keys.ok).chat.send({ chatRequest: { model, messages: hi } })),
};
const chunks = input.chunks && {
  async chunks() {
    return input.chunks.map((c) => {
      const chunk = ChatStreamChunk$inboundSchema.parse(JSON.parse(c));
      return { error: chunk.error?.code ?? null, finish: chunk.choices[0]?.finishReason ?? null, usage: chunk.usage?.totalTokens ?? null };
    });
  },
};
const checks = { answers, errors, chunks }[input.mode ?? "answers"];

const results = {};
for (const [name, check] of Object.entries(checks)) {
  try {
    results[name] = { ok: true, value: await check() };
  } catch (error) {
    results[name] = { ok: false, error: `${error.constructor.name}: ${error.message}`.slice(0, 2000) };
  }
}
process.stdout.write(JSON.stringify(results));
