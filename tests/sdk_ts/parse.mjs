// Every kind of answer the server gives, through OpenRouter's official TypeScript SDK, which validates each answer
// against its own schemas (a null where OpenRouter omits a field, or a missing field, fails the call).
// Input on stdin: {"url", "model", "image"}. Output on stdout: {check: {ok, value} | {ok: false, error}}.
import { OpenRouter } from "@openrouter/sdk";

const input = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (piece) => (text += piece));
  process.stdin.on("end", () => done(text));
}));
const sdk = new OpenRouter({ apiKey: "sk-or-v1-local", serverURL: `${input.url}/api/v1` });
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

const checks = {
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

const results = {};
for (const [name, check] of Object.entries(checks)) {
  try {
    results[name] = { ok: true, value: await check() };
  } catch (error) {
    results[name] = { ok: false, error: `${error.constructor.name}: ${error.message}`.slice(0, 2000) };
  }
}
process.stdout.write(JSON.stringify(results));
