"""Language modelling: from the words so far, predict the next one. Running text as one stream
of token ids (`corpus`), cut into rows and truncated-backpropagation windows with the state
carried across them (`windows`), the recurrent language model (`network`), perplexity
defined exactly (`perplexity`), and the classical answers it is measured against, unigram and
Kneser-Ney n-grams from KenLM (`ngram`)."""
