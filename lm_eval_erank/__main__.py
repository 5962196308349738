from lm_eval_erank.cli import main

if __name__ == "__main__":
    main()
