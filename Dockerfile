# The Steadfast worker (and the fault-injecting provider) as an image.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# Metrics and probes must be reachable from outside the container (the default is loopback).
ENV STEADFAST_LISTEN_HOST=0.0.0.0
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY migrations ./migrations
COPY examples ./examples
# The workflow bundle, built once into the image: a restarted worker skips webpack.
RUN node src/worker/bundle-cache.ts
USER node
CMD ["node", "src/worker/worker.ts"]
